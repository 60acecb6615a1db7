"""Lip-sync: phoneme -> mouth mapping, track easing and pauses, the schedule on a fake clock, cancellation,
and how the animator uses it (pure logic: no torch, no server)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from greenroom_modules.talkinghead import pose as P
from greenroom_modules.talkinghead.animator import Animator
from greenroom_modules.talkinghead.lipsync import (ATTACK, CLOSED, PAUSE, RELEASE, SHAPE_MORPHS, SHAPES, LipSync, LipSyncError,
                                         Track, events_from_words, phoneme_units, prefetch_pose, shape_of)
from greenroom_modules.talkinghead.settings import AnimatorSettings

# Words as the tts module gives them ("Hello there! Bob paid ..." from Kokoro, rounded).
WORDS = [
    {"word": "Hello", "phonemes": "həlˈO", "start": 0.325, "end": 0.65},
    {"word": "there", "phonemes": "ðˈɛɹ", "start": 0.7, "end": 1.35},
    {"word": "Bob", "phonemes": "bˈɑb", "start": 1.95, "end": 2.225},
    {"word": "she", "phonemes": "ʃi", "start": 2.275, "end": 2.55},
]


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def dominant(mix: np.ndarray) -> str:
    return "closed" if float(mix.max()) < 1e-6 else SHAPES[int(np.argmax(mix))]


def mouth(pose: np.ndarray) -> np.ndarray:
    return pose[SHAPE_MORPHS]


# -- mapping ------------------------------------------------------------------------------------

@pytest.mark.parametrize("phoneme, shape", [
    ("ɑ", "aaa"), ("æ", "aaa"), ("ʌ", "aaa"), ("i", "iii"), ("ɪ", "iii"), ("u", "uuu"), ("ʊ", "uuu"),
    ("ɛ", "eee"), ("ɔ", "ooo"), ("ɒ", "ooo"), ("w", "uuu"), ("ʃ", "ooo"), ("s", "eee"), ("k", "aaa"),
    ("m", "closed"), ("b", "closed"), ("p", "closed"), (".", "closed"),
    ("O", "ooo"), ("I", "aaa"), ("A", "eee"), ("W", "aaa"), ("Y", "ooo")])
def test_each_phoneme_has_its_mouth_shape(phoneme, shape):
    assert dominant(shape_of(phoneme)) == shape


def test_vowels_open_wider_than_consonants():
    assert shape_of("ɑ").max() == 1.0 and shape_of("i").max() == 1.0 and shape_of("u").max() == 1.0
    for consonant in "stdnlkgfv":
        assert shape_of(consonant).max() <= 0.5, consonant


def test_units_drop_stress_marks_split_diphthongs_and_lengthen():
    assert [dominant(u.mix) for u in phoneme_units("bˈɑb")] == ["closed", "aaa", "closed"]
    hello = phoneme_units("həlˈO")  # h ə l o ʊ
    assert [dominant(u.mix) for u in hello] == ["aaa", "aaa", "eee", "ooo", "uuu"]
    plain, long = phoneme_units("ɑ"), phoneme_units("ɑː")
    assert len(long) == 1 and long[0].weight > plain[0].weight
    assert phoneme_units("ˈˌ ") == []
    assert len(phoneme_units("☃")) == 1  # unknown symbols still take their share of time


# -- track ----------------------------------------------------------------------------------------

def test_events_cover_words_in_order_with_pauses_closed():
    events = events_from_words(WORDS)
    assert events[0].start == 0.0 and dominant(events[0].mix) == "closed"  # silence before the first word
    assert all(a.end <= b.start + 1e-9 for a, b in zip(events, events[1:]))
    # the 0.6 s gap after "there" closes the mouth; the 0.05 s gap after "Bob" does not get its own event
    pause = [e for e in events if e.start >= 1.35 - 1e-9 and e.end <= 1.95 + 1e-9]
    assert len(pause) == 1 and dominant(pause[0].mix) == "closed" and pause[0].end - pause[0].start >= PAUSE
    short_gap = [e for e in events if 2.225 < e.start < 2.275]
    assert short_gap == []
    # a word's sounds share its time, vowels longer than consonants
    bob = [e for e in events if 1.95 - 1e-9 <= e.start and e.end <= 2.275 + 1e-9]
    lengths = [e.end - e.start for e in bob]
    assert [dominant(e.mix) for e in bob] == ["closed", "aaa", "closed"]
    assert lengths[1] > lengths[0] and abs(bob[0].start - 1.95) < 1e-9


def test_words_without_times_or_phonemes_are_skipped():
    words = [{"word": "x", "phonemes": "", "start": 0.1, "end": 0.2},
             {"word": "y", "phonemes": "ɑ", "start": None, "end": 0.4},
             {"word": "z", "phonemes": "ɑ", "start": 0.5, "end": 0.4},
             {"word": "ok", "phonemes": "ɑ", "start": 0.5, "end": 0.7}]
    events = events_from_words(words)
    assert [dominant(e.mix) for e in events] == ["closed", "aaa"]
    assert Track.from_words([]).sample(1.0).tolist() == CLOSED.tolist()


def test_track_holds_each_shape_and_eases_between():
    track = Track.from_words(WORDS)
    bob_vowel = [e for e in events_from_words(WORDS) if dominant(e.mix) == "aaa" and e.start > 1.9][0]
    middle = (bob_vowel.start + bob_vowel.end) / 2
    assert track.sample(middle).tolist() == pytest.approx(shape_of("ɑ").tolist())
    assert dominant(track.sample(1.65)) == "closed"                  # inside the pause
    assert track.sample(track.end + 1).tolist() == CLOSED.tolist()   # closed after the last word
    assert track.sample(0.1).tolist() == CLOSED.tolist()             # closed before the first
    # eased: small time steps never jump far
    ts = np.arange(0.0, track.end + 0.2, 0.002)
    values = np.stack([track.sample(t) for t in ts])
    assert np.abs(np.diff(values, axis=0)).max() < 0.2
    assert values.max() == pytest.approx(1.0)


# -- schedule on a fake clock ------------------------------------------------------------------

def test_nothing_plays_until_started():
    clock = FakeClock()
    sync = LipSync(clock)
    sync.prepare(Track.from_words(WORDS), 2.6)
    pose = np.zeros(45, dtype=np.float32)
    assert sync.apply(pose, clock.now + 1.0) is False and not pose.any()
    assert sync.status()["utterance"]["state"] == "pending"


def test_schedule_follows_the_clock_with_offset_and_latency():
    clock = FakeClock(100.0)
    sync = LipSync(clock)
    track = Track.from_words(WORDS)
    u = sync.prepare(track, 2.6)
    vowel = [e for e in events_from_words(WORDS) if dominant(e.mix) == "aaa" and e.start > 1.9][0]
    t_vowel = (vowel.start + vowel.end) / 2

    sync.start(u.id, offset=0.0, latency=0.0)  # the audio starts now (t = 100)
    pose = np.zeros(45, dtype=np.float32)
    assert sync.apply(pose, 100.0 + t_vowel)
    assert mouth(pose).tolist() == pytest.approx(shape_of("ɑ").tolist())
    assert pose[P.INDEX["mouth_delta"]] == 0.0
    pose[:] = 0
    sync.apply(pose, 100.0 + 1.65)
    assert dominant(mouth(pose)) == "closed"

    # started late: the audio was already 0.5 s in when the client said so
    clock.now = 200.0
    sync.start(u.id, offset=0.5, latency=0.0)
    pose[:] = 0
    sync.apply(pose, 200.0 + t_vowel - 0.5)
    assert mouth(pose).tolist() == pytest.approx(shape_of("ɑ").tolist())

    # latency: the shape shows that much before its sound
    clock.now = 300.0
    sync.start(u.id, offset=0.0, latency=0.1)
    pose[:] = 0
    sync.apply(pose, 300.0 + t_vowel - 0.1)
    assert mouth(pose).tolist() == pytest.approx(shape_of("ɑ").tolist())
    assert sync.status()["utterance"]["state"] == "playing"


def test_blends_from_and_back_to_the_expression_mouth_then_finishes():
    clock = FakeClock(0.0)
    sync = LipSync(clock)
    track = Track([0.5, 1.0], [shape_of("ɑ"), shape_of("ɑ")])
    sync.start(sync.prepare(track, 1.0).id)
    smile = np.zeros(45, dtype=np.float32)
    smile[P.INDEX["mouth_iii_index"]] = 0.6  # the expression's own mouth
    pose = smile.copy()
    assert sync.apply(pose, 0.5 - ATTACK - 0.01)  # before the attack: all expression
    assert mouth(pose).tolist() == pytest.approx(mouth(smile).tolist())
    pose = smile.copy()
    sync.apply(pose, 0.75)
    assert mouth(pose).tolist() == pytest.approx(shape_of("ɑ").tolist())
    pose = smile.copy()
    sync.apply(pose, 1.0 + RELEASE / 2)
    assert 0.0 < pose[P.INDEX["mouth_iii_index"]] < 0.6 and 0.0 < pose[P.INDEX["mouth_aaa_index"]] < 1.0
    pose = smile.copy()
    assert sync.apply(pose, 1.0 + RELEASE + 0.01) is False  # done: the animator's own mouth again
    assert sync.current() is None and sync.finished == 1


# -- cancellation --------------------------------------------------------------------------------

def test_stop_eases_the_mouth_back_and_ends_the_schedule():
    clock = FakeClock(10.0)
    sync = LipSync(clock)
    track = Track([0.0, 5.0], [shape_of("ɑ"), shape_of("ɑ")])
    u = sync.prepare(track, 5.0)
    sync.start(u.id)
    clock.now = 11.0
    assert sync.stop("someone-else") is False
    assert sync.stop(u.id) is True
    pose = np.zeros(45, dtype=np.float32)
    sync.apply(pose, 11.0 + RELEASE / 2)
    assert 0.0 < mouth(pose)[0] < 1.0
    pose[:] = 0
    assert sync.apply(pose, 11.0 + RELEASE + 0.01) is False and not pose.any()
    assert sync.current() is None and sync.cancelled == 1 and sync.finished == 0
    assert sync.stop() is False  # idempotent


def test_new_utterance_cancels_the_playing_one():
    clock = FakeClock(0.0)
    sync = LipSync(clock)
    first = sync.prepare(Track([0.0, 5.0], [shape_of("ɑ")] * 2), 5.0)
    sync.start(first.id)
    second = sync.prepare(Track([0.0, 5.0], [shape_of("u")] * 2), 5.0)
    pose = np.zeros(45, dtype=np.float32)
    assert sync.apply(pose, 1.0) is False  # the old one is gone, the new one waits for its start
    with pytest.raises(LipSyncError) as stale:
        sync.start(first.id)
    assert stale.value.status == 409
    sync.start(second.id)
    assert sync.apply(pose, 1.0) and dominant(mouth(pose)) == "uuu"
    assert sync.cancelled == 1


def test_start_without_an_utterance_is_404_and_stop_of_pending_drops_it():
    sync = LipSync(FakeClock())
    with pytest.raises(LipSyncError) as missing:
        sync.start()
    assert missing.value.status == 404
    u = sync.prepare(Track.from_words(WORDS), 2.6)
    assert sync.stop(u.id) and sync.current() is None


# -- the animator ---------------------------------------------------------------------------------

def quiet_animator() -> Animator:
    settings = AnimatorSettings(blink_probability=0.0, sway_macro_strength=0.0, sway_micro_strength=0.0)
    return Animator(settings, {P.NEUTRAL: np.zeros(45, dtype=np.float32)}, rng=random.Random(1))


def test_animator_speaks_with_lipsync_and_falls_back_to_talking():
    animator = quiet_animator()
    sync = animator.talking.lipsync
    clock = FakeClock(0.0)
    sync.clock = clock
    track = Track([0.0, 2.0], [shape_of("u")] * 2)
    sync.start(sync.prepare(track, 2.0).id)
    animator.start_talking()  # the no-audio animation is on too: lip-sync wins while it plays
    pose = animator.tick(1.0)
    assert dominant(mouth(pose)) == "uuu" and pose[P.INDEX["mouth_uuu_index"]] == pytest.approx(1.0)
    opened = set()
    for k in range(60):  # after the utterance, the no-audio talking animation moves the mouth again
        pose = animator.tick(3.0 + k * 0.04)
        opened.add(round(float(pose[P.INDEX["mouth_aaa_index"]]), 2))
    assert sync.current() is None and len(opened) > 3


def test_prefetch_pose_opens_every_mouth_shape():
    pose = np.zeros(45, dtype=np.float32)
    pose[P.INDEX["eyebrow_raised_left_index"]] = 0.5
    wanted = prefetch_pose(pose)
    assert wanted[SHAPE_MORPHS].tolist() == [1.0] * 5 and wanted[P.INDEX["eyebrow_raised_left_index"]] == 0.5
    assert not pose[SHAPE_MORPHS].any()
