"""tts parts that need no model: text normalisation, sentences, voice grammar, scheduling, timing maths,
and the codecs (decoded by independent decoders)."""
from __future__ import annotations

import io
import threading
import time

import av
import numpy as np
import pytest
import soundfile as sf

from greenroom_modules.tts import audio, text, voices
from greenroom_modules.tts.backends import FRAME, MAX_TOKENS, SAMPLE_RATE
from greenroom_modules.tts.engine import split_tokens, token_times
from greenroom_modules.tts.g2p import PhonToken, spoken_text
from greenroom_modules.tts.scheduler import Busy, OverBudget, Scheduler

KNOWN = ["af_bella", "af_sky", "bm_george"]


# -- text ----------------------------------------------------------------------------------------

def words_of(sentence):
    return [(i.original, i.spoken) for i in sentence if i.is_word]


@pytest.mark.parametrize("written, spoken", [
    ("$3.50", "three dollars and fifty cents"), ("$1", "one dollar"), ("€12", "twelve euros"),
    ("£0.99", "ninety nine pence"), ("Dr.", "doctor"), ("Mr.", "mister"), ("e.g.", "for example"),
    ("1,234", "one thousand two hundred and thirty four"), ("3.14", "three point one four"),
    ("2024", "twenty twenty four"), ("1999", "nineteen ninety nine"), ("21st", "twenty first"),
    ("50%", "fifty percent"), ("5:30pm", "five thirty p m"), ("7:05", "seven oh five"),
    ("40–60°C", "forty to sixty degrees Celsius"), ("-7", "minus seven"), ("MP3", "MP three"),
    ("&", "and"), ("#5", "number five"), ("hello", "hello"),
])
def test_normalise_word(written, spoken):
    assert text.normalise_word(written) == spoken


def test_currency_scale_moves_unit_after_the_scale_word():
    (sentence,) = text.sentences("It cost $3 million.")
    assert words_of(sentence)[2:] == [("$3", "three"), ("million", "million dollars")]


def test_originals_survive_punctuation_and_quotes():
    (sentence,) = text.sentences('"Dr. Smith," she said, "paid $3.50!"')
    assert words_of(sentence) == [("Dr.", "doctor"), ("Smith", "Smith"), ("she", "she"), ("said", "said"),
                                  ("paid", "paid"), ("$3.50", "three dollars and fifty cents")]


def test_sentences_split_at_terminal_punctuation_not_abbreviations():
    found = [text.sentence_text(s) for s in text.sentences("Dr. Smith is here. Is he? Yes!\nNew line… ok")]
    assert found == ["Dr. Smith is here.", "Is he?", "Yes!", "New line…", "ok"]


def test_cleaning_drops_control_characters_and_asterisks():
    assert text.clean("a\x00b\x07c *bold* \u200bd") == "a b c bold  d"


def test_only_punctuation_and_emoji_have_no_words():
    (sentence,) = text.sentences("!!! 😀 ...")
    assert not any(i.is_word for i in sentence)
    assert spoken_text(sentence)[0].strip() == "!!! ..."


def test_very_long_words_are_cut_for_g2p_but_kept_as_written():
    (sentence,) = text.sentences("a" * 5000)
    assert len(sentence[0].spoken) == text.MAX_WORD_CHARS and len(sentence[0].original) == 5000


def test_spoken_text_spans_point_at_each_word():
    (sentence,) = text.sentences("Pay $3.50, Dr. Who.")
    spoken, spans = spoken_text(sentence)
    assert [spoken[a:b] for a, b in spans.values()] == ["Pay", "three dollars and fifty cents", "doctor", "Who"]


# -- voices ---------------------------------------------------------------------------------------

def test_voice_grammar():
    assert voices.parse("af_bella", KNOWN) == [("af_bella", 1.0)]
    assert voices.parse("af_bella+af_sky", KNOWN) == [("af_bella", 0.5), ("af_sky", 0.5)]
    assert voices.parse(" af_bella(2) + af_sky(1) ", KNOWN) == [("af_bella", 2 / 3), ("af_sky", 1 / 3)]
    assert voices.parse("af_bella(0.5)+af_bella(1.5)", KNOWN) == [("af_bella", 1.0)]


def test_two_voice_balance():
    assert voices.combine("af_bella", KNOWN, voice2="af_sky", mix=0.25) == [("af_bella", 0.75), ("af_sky", 0.25)]
    assert voices.combine("af_bella", KNOWN, voice2="af_sky") == [("af_bella", 0.5), ("af_sky", 0.5)]
    assert voices.combine("af_bella", KNOWN, voice2="af_sky", mix=1.0) == [("af_sky", 1.0)]


@pytest.mark.parametrize("spec, message", [
    ("", "empty voice"), ("af_bella+", "'' is not 'name'"), ("af_bella(x)", "is not 'name'"),
    ("af_bella(0)", "must be a positive"), ("nobody", "unknown voice 'nobody'; valid voices: af_bella, af_sky"),
    ("af_bella((2)", "is not 'name'"), ("+".join(["af_bella"] * 9), "at most 8"),
])
def test_malformed_voices(spec, message):
    with pytest.raises(voices.VoiceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        voices.parse(spec, KNOWN)


def test_mix_needs_voice2_and_a_balance_in_range():
    with pytest.raises(voices.VoiceError, match="mix: needs voice2"):
        voices.combine("af_bella", KNOWN, mix=0.3)
    with pytest.raises(voices.VoiceError, match="mix: must lie between"):
        voices.combine("af_bella", KNOWN, voice2="af_sky", mix=1.5)


def test_aliases_expand():
    aliases = {"alloy": "af_bella", "narrator": "af_bella(2)+af_sky"}
    assert voices.parse("alloy", KNOWN, aliases) == [("af_bella", 1.0)]
    assert voices.parse("narrator", KNOWN, aliases) == [("af_bella", 2 / 3), ("af_sky", 1 / 3)]
    assert voices.parse("alloy+af_sky", KNOWN, aliases) == [("af_bella", 0.5), ("af_sky", 0.5)]


def test_blend_is_symmetric_and_differs_from_parts():
    rng = np.random.default_rng(0)
    packs = {n: rng.normal(size=(510, 256)).astype(np.float32) for n in KNOWN}
    ab = voices.blend(voices.parse("af_bella+af_sky", KNOWN), packs.__getitem__)
    ba = voices.blend(voices.parse("af_sky+af_bella", KNOWN), packs.__getitem__)
    assert np.array_equal(ab, ba)
    assert not np.allclose(ab, packs["af_bella"]) and not np.allclose(ab, packs["af_sky"])
    np.testing.assert_allclose(ab, (packs["af_bella"] + packs["af_sky"]) / 2, rtol=1e-5, atol=1e-6)
    assert voices.canonical(voices.parse("af_sky+af_bella", KNOWN)) == voices.canonical(
        voices.parse("af_bella+af_sky", KNOWN))


# -- timing maths ---------------------------------------------------------------------------------

def test_token_times_follow_durations_and_skip_trailing_spaces():
    piece = [[1, 2, 3], [4], [5, 6]]  # word (with its space), punctuation, word
    durations = np.array([10, 1, 2, 3, 4, 5, 6, 7])  # pad, 6 ids, pad
    times = token_times(piece, durations, int(durations.sum() * FRAME), [True, False, False])
    assert times[0] == (10 * FRAME, 13 * FRAME)  # ids 1 and 2; the space (id 3) is not part of the word
    assert times[1] == (16 * FRAME, 20 * FRAME)
    assert times[2] == (20 * FRAME, 31 * FRAME)


def test_split_tokens_prefers_punctuation_and_respects_the_limit():
    tokens, ids = [], []
    for k in range(60):
        tokens.append(PhonToken("wɜɹd", k, True))
        ids.append([1] * 10)
        if k == 20:
            tokens.append(PhonToken(",", None, True))
            ids.append([2, 3])
    pieces = split_tokens(ids, tokens)
    assert pieces[0] == (0, 22)  # cut right after the comma, not at the last word that fits
    assert all(sum(len(i) for i in ids[a:b]) <= MAX_TOKENS for a, b in pieces)
    assert pieces[-1][1] == len(ids) and all(p[1] == q[0] for p, q in zip(pieces, pieces[1:]))


def spoken_length(piece):
    return sum(len(i.spoken) + 1 for i in piece)


def test_a_sentence_without_breaks_becomes_bounded_units_that_keep_every_word():
    written = "$1,234,567.89 " * 1300  # 18 KB, one "sentence" of 2.3 hours of speech
    [sentence] = text.sentences(written)
    units = text.units(written)
    assert len(units) > 100
    assert all(spoken_length(u) <= text.MAX_UNIT_CHARS for u in units)
    assert [i.original for u in units for i in u] == [i.original for i in sentence]


def test_long_sentences_are_cut_after_the_strongest_punctuation_that_fits():
    clause = "and then the little robot walked a bit further along the shore"
    written = ", ".join([clause] * 3) + "; " + ", ".join([clause] * 6) + "."
    units = text.units(written)
    assert len(units) >= 2 and all(spoken_length(u) <= text.MAX_UNIT_CHARS for u in units)
    assert all(u[-1].original in (",", ";", ".") for u in units)  # never in the middle of a clause
    assert units[0][-1].original == ";"  # the semicolon fits in the first unit, so it wins over commas
    assert len(text.units("A short sentence, with a comma. And another.")) == 2


# -- scheduling -----------------------------------------------------------------------------------

def test_scheduler_interleaves_sentences_of_concurrent_requests():
    order: list[str] = []
    gate = threading.Event()

    def render(name):
        def run(i):
            gate.wait(5)
            order.append(f"{name}{i}")
            time.sleep(0.01)
            return i
        return run

    sched = Scheduler(max_jobs=4)
    try:
        long_job = sched.submit(render("L"), 6)
        short_job = sched.submit(render("S"), 2)
        gate.set()
        assert list(short_job) == [0, 1]
        assert list(long_job) == list(range(6))
        assert order.index("S1") < order.index("L3")  # the short request never waits for the long one
    finally:
        sched.close()


def test_scheduler_refuses_beyond_its_bound_with_a_retry_hint():
    hold = threading.Event()
    sched = Scheduler(max_jobs=1)
    try:
        job = sched.submit(lambda i: hold.wait(5), 1)
        with pytest.raises(Busy) as exc:
            sched.submit(lambda i: i, 1)
        assert exc.value.retry_after >= 1
        hold.set()
        assert list(job) == [True]
        assert list(sched.submit(lambda i: i * 2, 2)) == [0, 2]
    finally:
        sched.close()


def test_scheduler_reports_failures_and_cancels_on_close():
    sched = Scheduler(max_jobs=2)
    try:
        def boom(i):
            raise RuntimeError("backend fell over")
        with pytest.raises(RuntimeError, match="fell over"):
            list(sched.submit(boom, 3))
        calls: list[int] = []
        job = sched.submit(lambda i: (calls.append(i), time.sleep(0.05))[1], 50)
        next(job)
        job.close()
        time.sleep(0.3)
        assert len(calls) < 10 and sched.active == 0
    finally:
        sched.close()


def test_a_request_past_its_budget_is_dropped_between_units_and_the_worker_is_free():
    sched = Scheduler(max_jobs=2)
    calls: list[int] = []
    try:
        job = sched.submit(lambda i: (calls.append(i), time.sleep(0.02))[1], 10_000, "long", budget=0.3)
        with pytest.raises(OverBudget) as exc:
            list(job)
        assert isinstance(exc.value, Busy) and "time_budget_s" in str(exc.value)
        assert list(sched.submit(lambda i: i, 3, "next", budget=30)) == [0, 1, 2]  # not queued behind "long"
        assert len(calls) < 10_000 and sched.active == 0
    finally:
        sched.close()


def test_a_slow_reader_gets_what_was_rendered_in_time_then_the_budget_error():
    sched = Scheduler(max_jobs=1)
    try:
        job = sched.submit(lambda i: time.sleep(0.02) or i, 10_000, "stream", budget=0.3)
        time.sleep(0.6)  # the reader is away while the budget runs out
        first = next(job)
        assert first == 0
        with pytest.raises(OverBudget):
            for _ in job:
                pass
        assert sched.active == 0  # the worker stopped at the deadline, not at the reader's pace
    finally:
        sched.close()


# -- codecs -----------------------------------------------------------------------------------------

TONE = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE)).astype(np.float32)


def decode(data: bytes, fmt: str) -> tuple[int, float]:
    """Sample rate and duration by a decoder that is not our encoder: libsndfile, or FFmpeg for AAC/raw PCM."""
    if fmt == "pcm":
        return SAMPLE_RATE, len(np.frombuffer(data, "<i2")) / SAMPLE_RATE
    if fmt == "aac":
        with av.open(io.BytesIO(data)) as container:
            frames = list(container.decode(audio=0))
        return frames[0].sample_rate, sum(f.samples for f in frames) / frames[0].sample_rate
    info = sf.info(io.BytesIO(data))
    return info.samplerate, info.frames / info.samplerate


@pytest.mark.parametrize("fmt", sorted(audio.FORMATS))
def test_every_format_decodes_to_24khz_and_the_right_length(fmt):
    rate, seconds = decode(audio.encode(TONE, fmt), fmt)
    assert rate in (SAMPLE_RATE, 48000)  # Ogg Opus decoders may output 48 kHz
    assert seconds == pytest.approx(1.5, abs=0.08)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "wav", "pcm"])
def test_streaming_encoder_emits_bytes_before_the_end(fmt):
    enc = audio.Encoder(fmt, streaming=True)
    first = enc.add(TONE[:SAMPLE_RATE // 2])
    rest = enc.add(TONE[SAMPLE_RATE // 2:]) + enc.finish()
    assert first  # playable bytes exist before the whole text is synthesized
    if fmt == "pcm":
        assert len(first + rest) == 2 * len(TONE)
        return
    with av.open(io.BytesIO(first + rest)) as container:
        frames = list(container.decode(audio=0))
    assert sum(f.samples for f in frames) / frames[0].sample_rate == pytest.approx(1.5, abs=0.1)


def test_the_onnx_session_does_not_spin_wait_between_operators():
    """Spinning onnxruntime threads burn the cores that avatar feeds and other requests need beside speech."""
    from greenroom_modules.tts.backends import OnnxBackend

    options = OnnxBackend(threads=1).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 1
