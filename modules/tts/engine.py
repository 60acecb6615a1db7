"""From text to sentences of audio with word timestamps: G2P, chunking to the model's limit, inference,
and the mapping from per-token durations back to the words the user wrote."""
from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import text as textmod
from . import voices
from .backends import FRAME, MAX_TOKENS, SAMPLE_RATE, Backend, style_row
from .contract import InvalidSpeech, WordTiming
from .g2p import PhonToken

log = logging.getLogger("greenroom.tts.engine")

SPEED_RANGE = (0.25, 4.0)
SILENCE_SECONDS = 0.2
"""What a sentence without any speakable word ('!!!', an emoji) becomes."""


TTSInputError = InvalidSpeech
"""Bad text, voice, speed or mix: the message names the field (answered 400)."""


@dataclass
class Segment:
    """One synthesized sentence; word times are relative to the segment's own start."""

    index: int
    text: str
    audio: np.ndarray
    words: list[WordTiming] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def words_at(self, offset: float) -> list[dict[str, Any]]:
        """The words as dicts on a timeline where this segment starts at ``offset`` seconds."""
        return [{**asdict(w), "start": round(w.start + offset, 3), "end": round(w.end + offset, 3)}
                for w in self.words]


@dataclass
class Plan:
    """A validated request: units to speak (sentences, long ones cut), the style pack, speed and pronunciation."""

    sentences: list[list[textmod.Item]]
    pack: np.ndarray
    speed: float
    british: bool
    voice: str


class Synthesizer:
    """Turns validated requests into sentence segments. ``render`` is called by the scheduler's workers."""

    def __init__(self, backend: Backend, phonemizer: Any, default_lang: str = "en-us") -> None:
        self.backend = backend
        self.phonemizer = phonemizer
        self.default_lang = default_lang
        self._styles: OrderedDict[str, np.ndarray] = OrderedDict()
        self._styles_lock = threading.Lock()
        self._known = backend.voices()

    def voices(self) -> list[str]:
        return list(self._known)

    # -- validation ---------------------------------------------------------------------------

    def plan(self, text: Any, voice: str, speed: float = 1.0, voice2: str | None = None, mix: float | None = None,
             lang: str | None = None, aliases: dict[str, str] | None = None, max_chars: int = 0) -> Plan:
        if not isinstance(text, str) or not textmod.clean(text).strip():
            raise TTSInputError("text: empty or whitespace only; give something to say")
        if max_chars and len(text) > max_chars:
            raise TTSInputError(f"text: {len(text)} characters; the limit is {max_chars}")
        if not isinstance(speed, (int, float)) or not math.isfinite(speed) \
                or not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
            raise TTSInputError(f"speed: must lie between {SPEED_RANGE[0]} and {SPEED_RANGE[1]}")
        if lang not in (None, "", "en-us", "en-gb"):
            raise TTSInputError("lang: must be 'en-us' or 'en-gb'")
        try:
            weights = voices.combine(voice, self._known, aliases, voice2, mix)
        except voices.VoiceError as exc:
            raise TTSInputError(str(exc)) from None
        name = voices.canonical(weights)
        lead = max(weights, key=lambda nw: nw[1])[0]
        british = (lang or ("en-gb" if lead.startswith("b") else self.default_lang)) == "en-gb"
        sentences = textmod.units(text)
        return Plan(sentences, self.style_pack(name, weights), float(speed), british, name)

    def style_pack(self, name: str, weights: list[tuple[str, float]]) -> np.ndarray:
        """The (mixed) style pack, cached by its canonical name."""
        with self._styles_lock:
            if name in self._styles:
                self._styles.move_to_end(name)
                return self._styles[name]
        pack = voices.blend(weights, self.backend.pack)
        with self._styles_lock:
            self._styles[name] = pack
            while len(self._styles) > 64:
                self._styles.popitem(last=False)
        return pack

    # -- synthesis ----------------------------------------------------------------------------

    def render(self, plan: Plan, index: int) -> Segment:
        """Synthesize sentence ``index`` of ``plan``."""
        sentence = plan.sentences[index]
        tokens = self.phonemizer(sentence, plan.british)
        token_ids = [self._ids(tk) for tk in tokens]
        _strip_trailing_space(token_ids, tokens, self.backend.vocab.get(" "))
        text = textmod.sentence_text(sentence)
        if not any(ids and tk.item is not None for ids, tk in zip(token_ids, tokens)):
            return Segment(index, text, np.zeros(int(SILENCE_SECONDS * SAMPLE_RATE), np.float32))
        audio_parts: list[np.ndarray] = []
        spans: dict[int, list[float]] = {}
        offset = 0
        space = self.backend.vocab.get(" ")
        for lo, hi in split_tokens(token_ids, tokens):
            piece = [list(ids) for ids in token_ids[lo:hi]]
            _truncate(piece)
            flat = [i for ids in piece for i in ids]
            audio, durations = self.backend.infer(flat, style_row(plan.pack, len(flat)), plan.speed)
            spaced = [bool(ids) and tokens[lo + k].space and ids[-1] == space for k, ids in enumerate(piece)]
            for k, (start, end) in enumerate(token_times(piece, durations, len(audio), spaced)):
                tk = tokens[lo + k]
                if tk.item is None or start is None:
                    continue
                span = spans.setdefault(tk.item, [math.inf, -math.inf])
                span[0] = min(span[0], (offset + start) / SAMPLE_RATE)
                span[1] = max(span[1], (offset + end) / SAMPLE_RATE)
            audio_parts.append(audio)
            offset += len(audio)
        words = []
        for item_index in sorted(spans):
            item = sentence[item_index]
            phonemes = " ".join(tk.phonemes for tk in tokens if tk.item == item_index and tk.phonemes)
            start, end = spans[item_index]
            words.append(WordTiming(item.spoken, item.original, phonemes, round(start, 3), round(end, 3)))
        return Segment(index, text, np.concatenate(audio_parts).astype(np.float32), words)

    def _ids(self, tk: PhonToken) -> list[int]:
        vocab = self.backend.vocab
        ids = [vocab[c] for c in tk.phonemes if c in vocab]
        if tk.space and " " in vocab:
            ids.append(vocab[" "])
        return ids


def _strip_trailing_space(token_ids: list[list[int]], tokens: list[PhonToken], space: int | None) -> None:
    """Kokoro is trained on phoneme strings without a trailing space."""
    for k in range(len(token_ids) - 1, -1, -1):
        if token_ids[k]:
            if space is not None and tokens[k].space and token_ids[k][-1] == space:
                token_ids[k] = token_ids[k][:-1]
            return


def _truncate(piece: list[list[int]]) -> None:
    """A single token longer than the model's limit (a 'word' of 600 letters) is cut to fit."""
    total = sum(len(ids) for ids in piece)
    if total > MAX_TOKENS:
        longest = max(range(len(piece)), key=lambda k: len(piece[k]))
        piece[longest] = piece[longest][:max(1, len(piece[longest]) - (total - MAX_TOKENS))]


def split_tokens(token_ids: list[list[int]], tokens: list[PhonToken]) -> list[tuple[int, int]]:
    """Token ranges of at most MAX_TOKENS ids, cut after the strongest punctuation that fits,
    else between words."""
    pieces: list[tuple[int, int]] = []
    start, count = 0, 0
    for k, ids in enumerate(token_ids):
        if count + len(ids) > MAX_TOKENS and k > start:
            cut = _best_cut(tokens, start, k)
            pieces.append((start, cut))
            start = cut
            count = sum(len(i) for i in token_ids[start:k])
        count += len(ids)
    if start < len(token_ids):
        pieces.append((start, len(token_ids)))
    return [(a, b) for a, b in pieces if any(token_ids[a:b])]


def _best_cut(tokens: list[PhonToken], start: int, end: int) -> int:
    for marks in textmod.CUT_PREFERENCE:
        for k in range(end - 1, start, -1):
            if tokens[k - 1].item is None and any(c in marks for c in tokens[k - 1].phonemes):
                return k
    return end


def token_times(piece: list[list[int]], durations: np.ndarray, n_samples: int,
                spaced: list[bool]) -> list[tuple[Any, Any]]:
    """(start, end) in samples of each token in ``piece`` from the model's per-id durations.

    ``durations`` has one entry per id plus the leading and trailing pad; a token's span excludes
    the space it ends with (``spaced``) so a word ends where its last phoneme does.
    """
    n_ids = sum(len(ids) for ids in piece)
    durations = np.asarray(durations, dtype=np.float64).reshape(-1)
    if len(durations) != n_ids + 2:
        log.warning("model gave %d durations for %d ids; spreading time evenly", len(durations), n_ids)
        durations = np.full(n_ids + 2, n_samples / FRAME / max(n_ids + 2, 1))
    scale = n_samples / max(durations.sum() * FRAME, 1.0)  # exact (1.0) for both Kokoro backends
    edges = np.concatenate([[0.0], np.cumsum(durations)]) * FRAME * scale
    out: list[tuple[Any, Any]] = []
    pos = 1  # ids start after the leading pad
    for ids, ends_in_space in zip(piece, spaced):
        if not ids:
            out.append((None, None))
            continue
        last = pos + len(ids) - (1 if ends_in_space and len(ids) > 1 else 0)
        out.append((float(edges[pos]), float(edges[last])))
        pos += len(ids)
    return out
