"""Server-side lip-sync: phonemes with times become an eased track of mouth shapes, played on a clock.

Kokoro gives each word's start and end and its phonemes (misaki's alphabet), not per-phoneme
times, so a word's time is shared among its phonemes by weight (vowels longer than consonants).
Each phoneme maps to a mix of THA3's five mouth-shape morphs (all zero is a closed mouth); a
pause between words longer than :data:`PAUSE` closes the mouth. The mouth holds each shape in the
middle of its phoneme and eases (smoothstep) between neighbours, so no frame jumps.

:class:`LipSync` belongs to one avatar. ``prepare`` stores an utterance and cancels the one
playing; ``start`` anchors it to the moment the listener hears the audio (the client signals
playback, with how far the audio already played); the render thread asks ``apply`` every tick.
Times come from an injectable clock (``time.monotonic`` by default), so tests run on a fake one.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from greenroom.errors import Error

from . import pose as P

SHAPES = ("aaa", "iii", "uuu", "eee", "ooo")
SHAPE_MORPHS = [P.INDEX[f"mouth_{s}_index"] for s in SHAPES]
CLOSED = np.zeros(len(SHAPES), dtype=np.float32)

PAUSE = 0.12        # s: a gap between words at least this long closes the mouth
EDGE_RATIO = 0.25   # share of a phoneme at each end spent easing in from / out to its neighbours
MAX_EDGE = 0.06     # s: the longest ease at one end of a phoneme (long vowels and pauses hold longer)
ATTACK = 0.08       # s: blend from the expression's own mouth into the track before it starts
RELEASE = 0.15      # s: blend back to the expression's own mouth after the track (or a stop)
VOWEL_WEIGHT, CONSONANT_WEIGHT, LENGTH_WEIGHT = 2.0, 1.0, 1.0


def _mix(aaa: float = 0.0, iii: float = 0.0, uuu: float = 0.0, eee: float = 0.0, ooo: float = 0.0) -> np.ndarray:
    return np.array([aaa, iii, uuu, eee, ooo], dtype=np.float32)


# Misaki's phonemes (American and British, plus what espeak-ng may add) -> mouth shape.
# Vowels open fully; consonants only hint at the shape their lips and jaw make.
VOWELS: dict[str, np.ndarray] = {
    "ɑ": _mix(aaa=1.0), "a": _mix(aaa=0.9, eee=0.1), "æ": _mix(aaa=0.7, eee=0.35), "ʌ": _mix(aaa=0.7),
    "ɐ": _mix(aaa=0.6), "ə": _mix(aaa=0.4), "ᵊ": _mix(aaa=0.3), "ɜ": _mix(aaa=0.35, uuu=0.3),
    "ɚ": _mix(aaa=0.3, uuu=0.3), "ɝ": _mix(aaa=0.3, uuu=0.3), "ɛ": _mix(eee=0.8, aaa=0.2),
    "e": _mix(eee=0.9), "i": _mix(iii=1.0), "ɪ": _mix(iii=0.7, eee=0.1), "ᵻ": _mix(iii=0.5),
    "y": _mix(iii=0.5, uuu=0.5), "u": _mix(uuu=1.0), "ʊ": _mix(uuu=0.7), "ɔ": _mix(ooo=0.9),
    "ɒ": _mix(ooo=0.8, aaa=0.2), "o": _mix(ooo=1.0),
}
DIPHTHONGS: dict[str, str] = {"A": "eɪ", "I": "aɪ", "W": "aʊ", "Y": "ɔɪ", "O": "oʊ", "Q": "əʊ"}
"""Misaki writes diphthongs as one capital letter; each becomes its two vowels."""
CONSONANTS: dict[str, np.ndarray] = {
    **dict.fromkeys("pbm", CLOSED),                       # lips together
    **dict.fromkeys("fv", _mix(iii=0.2)),                 # lower lip to teeth
    **dict.fromkeys("w", _mix(uuu=0.8)),                  # rounded
    **dict.fromkeys("ʃʒʧʤ", _mix(ooo=0.4, uuu=0.2)),      # rounded, teeth close
    **dict.fromkeys("ɹr", _mix(ooo=0.25, uuu=0.2)),
    **dict.fromkeys("stdnlzθðTɾʔ", _mix(eee=0.35)),       # tongue at the teeth, jaw nearly closed
    **dict.fromkeys("kɡgŋh", _mix(aaa=0.35)),             # back of the mouth, jaw open a little
    **dict.fromkeys("jç", _mix(iii=0.45)),
}
OTHER_CONSONANT = _mix(aaa=0.25)
MARKS = set("ˈˌ'")                  # stress: no time of its own
LENGTH = "ː"                       # lengthens the sound before it
PUNCTUATION = set(".,!?;:—…-–\"()“”")  # a pause (closed mouth) where it appears inside a word's phonemes


@dataclass
class Unit:
    """One sound of a word: its mouth shape and its share of the word's time."""

    mix: np.ndarray
    weight: float


def phoneme_units(phonemes: str) -> list[Unit]:
    """The sounds of one word's phoneme string, in order (diphthongs split, marks dropped)."""
    units: list[Unit] = []
    for ch in phonemes:
        if ch in MARKS or ch.isspace():
            continue
        if ch == LENGTH:
            if units:
                units[-1].weight += LENGTH_WEIGHT
            continue
        if ch in DIPHTHONGS:
            first, second = DIPHTHONGS[ch]
            units.append(Unit(VOWELS[first], VOWEL_WEIGHT * 0.75))
            units.append(Unit(VOWELS[second], VOWEL_WEIGHT * 0.5))
        elif ch in VOWELS:
            units.append(Unit(VOWELS[ch], VOWEL_WEIGHT))
        elif ch in PUNCTUATION:
            units.append(Unit(CLOSED, CONSONANT_WEIGHT))
        else:
            units.append(Unit(CONSONANTS.get(ch, OTHER_CONSONANT), CONSONANT_WEIGHT))
    return units


def shape_of(phoneme: str) -> np.ndarray:
    """The mouth mix of a single phoneme (a diphthong gives its first vowel); for GUIs and tests."""
    units = phoneme_units(phoneme)
    return units[0].mix.copy() if units else CLOSED.copy()


@dataclass
class Event:
    """A stretch of audio time [start, end) showing one mouth shape."""

    start: float
    end: float
    mix: np.ndarray


def events_from_words(words: Iterable[Mapping[str, Any]], pause: float = PAUSE) -> list[Event]:
    """Phoneme events on the audio timeline, with closed-mouth events for pauses and silence at the start."""
    events: list[Event] = []
    cursor = 0.0
    for word in sorted(_timed(words), key=lambda w: w[0]):
        start, end, phonemes = word
        start = max(start, cursor)
        if end <= start:
            continue
        units = phoneme_units(phonemes)
        if not units:
            continue
        if start - cursor >= pause or not events:
            if start > cursor:
                events.append(Event(cursor, start, CLOSED))
        elif events and start > cursor:
            events[-1].end = start  # a short gap: the last sound lasts until the next word
        total = sum(u.weight for u in units)
        t = start
        for unit in units:
            length = (end - start) * unit.weight / total
            events.append(Event(t, t + length, unit.mix))
            t += length
        cursor = end
    return events


def _timed(words: Iterable[Mapping[str, Any]]) -> list[tuple[float, float, str]]:
    out = []
    for w in words:
        start, end, phonemes = w.get("start"), w.get("end"), w.get("phonemes")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and isinstance(phonemes, str) \
                and np.isfinite(start) and np.isfinite(end):
            out.append((float(start), float(end), phonemes))
    return out


class Track:
    """Keyframes of mouth mixes on the audio timeline, sampled with smoothstep easing."""

    def __init__(self, times: Sequence[float], mixes: Sequence[np.ndarray]) -> None:
        self.times = np.asarray(times, dtype=np.float64)
        self.mixes = np.asarray(mixes, dtype=np.float32).reshape(len(self.times), len(SHAPES))
        if len(self.times) and np.any(np.diff(self.times) < 0):
            raise ValueError("keyframe times must not decrease")

    @classmethod
    def from_events(cls, events: Sequence[Event], tail: float = RELEASE) -> "Track":
        """Each event holds its shape over its middle; the track ends closed ``tail`` s after the last sound."""
        times: list[float] = []
        mixes: list[np.ndarray] = []
        for ev in events:
            edge = min((ev.end - ev.start) * EDGE_RATIO, MAX_EDGE)
            for t in (ev.start + edge, ev.end - edge):
                if times and t <= times[-1]:
                    t = times[-1] + 1e-6
                times.append(t)
                mixes.append(ev.mix)
        if events:
            times.append(max(events[-1].end + tail, times[-1] + 1e-6))
            mixes.append(CLOSED)
        return cls(times, mixes)

    @classmethod
    def from_words(cls, words: Iterable[Mapping[str, Any]], pause: float = PAUSE) -> "Track":
        return cls.from_events(events_from_words(words, pause))

    @property
    def start(self) -> float:
        return float(self.times[0]) if len(self.times) else 0.0

    @property
    def end(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0

    def __len__(self) -> int:
        return len(self.times)

    def sample(self, t: float) -> np.ndarray:
        """The mouth mix at audio time ``t`` (closed outside the track)."""
        n = len(self.times)
        if n == 0 or t <= self.times[0]:
            return self.mixes[0].copy() if n else CLOSED.copy()
        if t >= self.times[-1]:
            return self.mixes[-1].copy()
        k = int(np.searchsorted(self.times, t, side="right")) - 1
        t0, t1 = self.times[k], self.times[k + 1]
        u = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        return self.mixes[k] + (self.mixes[k + 1] - self.mixes[k]) * np.float32(smoothstep(u))


def smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


@dataclass
class Utterance:
    """One scheduled speech: its track and, once playback started, the clock time of audio t = 0."""

    id: str
    track: Track
    duration: float
    created: float
    anchor: float | None = None
    latency: float = 0.0
    released_at: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def audio_time(self, now: float) -> float:
        """Where in the audio the frame rendered at ``now`` should be (ahead by the video latency)."""
        assert self.anchor is not None
        return now - self.anchor + self.latency


class LipSyncError(Error, LookupError):
    """No utterance to start (404), or not the one named (409); the answer names the ``utterance_id`` asked for."""

    def __init__(self, message: str, status: int, utterance_id: str | None = None) -> None:
        super().__init__(status, message, utterance_id=utterance_id)


class LipSync:
    """The lip-sync schedule of one avatar. Thread-safe; ``apply`` runs in the render thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._current: Utterance | None = None
        self.finished = 0
        self.cancelled = 0

    def prepare(self, track: Track, duration: float, **meta: Any) -> Utterance:
        """Store a new utterance (not yet playing); whatever was scheduled before is cancelled."""
        utterance = Utterance(secrets.token_hex(6), track, float(duration), self.clock(), meta=meta)
        with self._lock:
            if self._current is not None:
                self.cancelled += 1
            self._current = utterance
        return utterance

    def start(self, utterance_id: str | None = None, offset: float = 0.0, latency: float = 0.0) -> Utterance:
        """Playback of the audio is at ``offset`` seconds now; ``latency`` (s) shows the mouth that much earlier."""
        with self._lock:
            current = self._current
            if current is None:
                raise LipSyncError("no utterance to start; POST /api/talkinghead/speak first", 404, utterance_id)
            if utterance_id is not None and utterance_id != current.id:
                raise LipSyncError(f"utterance_id '{utterance_id}' was replaced or stopped; the current one is "
                                   f"'{current.id}'", 409, utterance_id)
            current.anchor = self.clock() - offset
            current.latency = latency
            current.released_at = None
            return current

    def stop(self, utterance_id: str | None = None) -> bool:
        """Cancel the current utterance (only if it is ``utterance_id``, when given); the mouth eases back."""
        with self._lock:
            current = self._current
            if current is None or (utterance_id is not None and utterance_id != current.id):
                return False
            if current.anchor is None:
                self._current = None
            elif current.released_at is None:
                current.released_at = self.clock()
            self.cancelled += 1
            return True

    def current(self) -> Utterance | None:
        return self._current

    def mix_at(self, now: float) -> tuple[np.ndarray, float] | None:
        """The mouth mix and its blend weight over the expression's own mouth at clock time ``now``.

        None when nothing plays (the caller's own mouth animation applies). A finished or released
        utterance is dropped here.
        """
        with self._lock:
            u = self._current
            if u is None or u.anchor is None:
                return None
            t = u.audio_time(now)
            weight = 1.0
            if u.released_at is not None:
                weight = 1.0 - smoothstep((now - u.released_at) / RELEASE)
            if t > u.track.end + RELEASE or weight <= 0.0:
                self._current = None
                if u.released_at is None:
                    self.finished += 1
                return None
            if t < u.track.start:
                weight *= smoothstep((t - (u.track.start - ATTACK)) / ATTACK)
            elif t > u.track.end:
                weight *= 1.0 - smoothstep((t - u.track.end) / RELEASE)
            return u.track.sample(t), weight

    def apply(self, pose: np.ndarray, now: float) -> bool:
        """Write the mouth for ``now`` into ``pose`` (45 morphs); False when no utterance is playing."""
        found = self.mix_at(now)
        if found is None:
            return False
        mix, weight = found
        mouth = np.zeros(len(P.MOUTH_OPEN), dtype=np.float32)  # the six mouth-open morphs; delta stays 0
        for i, index in enumerate(SHAPE_MORPHS):
            mouth[P.MOUTH_OPEN.index(index)] = mix[i]
        pose[P.MOUTH_OPEN] = pose[P.MOUTH_OPEN] * (1.0 - weight) + mouth * weight
        return True

    def status(self) -> dict[str, Any]:
        u = self._current
        out: dict[str, Any] = {"finished": self.finished, "cancelled": self.cancelled, "utterance": None}
        if u is not None:
            state = "pending" if u.anchor is None else ("stopping" if u.released_at is not None else "playing")
            out["utterance"] = {"utterance_id": u.id, "state": state, "duration": u.duration,
                                "keyframes": len(u.track), "latency": u.latency,
                                "position": None if u.anchor is None else round(u.audio_time(self.clock()), 3)}
        return out


def prefetch_pose(pose: np.ndarray) -> np.ndarray:
    """``pose`` with every mouth shape open, so a cached renderer can queue all its mouth layers."""
    wanted = np.array(pose, dtype=np.float32, copy=True)
    wanted[SHAPE_MORPHS] = 1.0
    return wanted
