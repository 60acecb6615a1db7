"""The web page's microphone in a real headless Chromium whose fake capture device plays a WAV that
Greenroom's own TTS spoke: record, transcribe (stt), show the words with their times, then "Say it back":
classified (classify), shown on the avatar (talkinghead) and spoken with lip-sync (tts)."""
from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
import requests
import soundfile as sf

from .server_process import ServerProcess
from .test_tts_http import word_error_rate
from .test_webui import CHROMIUM, CHROMIUM_ARGS, QUIET_ANIMATOR, Page, require_chromium

pytestmark = pytest.mark.slow

SAID = "I am so happy to see you again, this is wonderful news!"
LEAD, TAIL = 0.5, 3.0  # seconds of silence around the speech in the capture file


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stt-browser")
    config = folder / "plugins.toml"
    config.write_text(f'[modules.talkinghead]\ncache_dir = "{folder / "cache"}"\nmode = "low_compute"\n'
                      f'precompute_emotions = false\n\n{QUIET_ANIMATOR}')
    proc = ServerProcess(["--config", str(config), "--enable-modules=talkinghead,tts,classify,stt"])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def capture(server, tmp_path_factory) -> tuple[str, float]:
    """A WAV of SAID, spoken by the server's TTS, for Chromium's fake microphone; and the speech's length."""
    r = requests.post(server.url + "/v1/audio/speech", json={"input": SAID, "voice": "jf_alpha",
                                                            "response_format": "wav"}, timeout=300)
    assert r.status_code == 200, r.text
    pcm, rate = sf.read(io.BytesIO(r.content), dtype="float32")
    padded = np.concatenate([np.zeros(int(LEAD * rate), np.float32), pcm, np.zeros(int(TAIL * rate), np.float32)])
    path = tmp_path_factory.mktemp("capture") / "said.wav"
    sf.write(path, padded, rate, subtype="PCM_16")
    return str(path), len(pcm) / rate


@pytest.fixture(scope="module")
def page(server, capture):
    require_chromium()
    from playwright.sync_api import sync_playwright
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={capture[0]}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        ui = Page(browser, server.url)
        ui.open()
        ui.page.wait_for_function("document.getElementById('feed').naturalWidth > 0", timeout=180_000)
        yield ui
        browser.close()


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def test_the_microphone_hears_the_words_with_their_times(page, capture):
    ui = page.page
    page.tab("speech")
    ui.click("#mic-button")
    ui.wait_for_selector("#mic-button.recording")
    time.sleep(LEAD + capture[1] + 1.0)  # the fake device plays the file in real time from its start
    ui.click("#mic-button")
    ui.wait_for_selector("#heard-words .word", timeout=240_000)
    heard = ui.inner_text("#heard-text")
    assert word_error_rate(words(SAID), words(heard)) < 0.2, heard
    timed = ui.eval_on_selector_all("#heard-words .word", "ws => ws.map(w => [+w.dataset.start, +w.dataset.end])")
    assert len(timed) == len(words(heard))
    assert all(0 <= start <= end for start, end in timed)
    assert [s for s, _ in timed] == sorted(s for s, _ in timed)
    assert timed[0][0] >= LEAD - 0.3  # the lead-in silence is not a word
    page.shot("stt-01-heard")
    assert page.errors == []


def test_say_it_back_classifies_shows_the_emotion_and_speaks(page, server):
    ui = page.page
    heard = ui.inner_text("#heard-text")
    ui.evaluate("""() => { window.__playing = false;
        document.getElementById('speech-audio').addEventListener('playing', () => { window.__playing = true; }); }""")
    ui.click("#loop-button")
    ui.wait_for_function("document.getElementById('mic-status').textContent.startsWith('emotion: ')", timeout=120_000)
    emotion = ui.inner_text("#mic-status").removeprefix("emotion: ").strip()
    ui.wait_for_function("window.__playing", timeout=240_000)
    assert ui.input_value("#speech-text") == heard
    ui.wait_for_selector("#speaking-badge", state="visible", timeout=30_000)  # lip-sync acknowledged
    iid = ui.eval_on_selector("#instance-select", "s => s.value")
    status = requests.get(f"{server.url}/api/talkinghead/status", params={"instance_id": iid}, timeout=30).json()
    assert status["emotion"] == emotion
    page.shot("stt-02-said-back")
    assert page.errors == []
