"""Regressions of the hostile-input and fault campaign (issue 20), each through real HTTP or the real CLI.

One server (tts, embeddings, talkinghead, websearch) with small limits serves most of this file; its
last test stops it with two signals. Another small tts server takes three signals.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from .server_process import ServerProcess, run_cli
from .test_hostile import png_bomb
from .test_reliability_support import private_files_env, talkinghead_settings, wait_until, write_config
from .test_websearch_fakes import FakeEngines

pytestmark = pytest.mark.slow

LONG_SENTENCE = "$1,234,567.89 " * 1300
"""18 KB without a sentence break: 2.3 hours of speech in one 'sentence'."""
STALE_SAVE = ".joy.k2j3h4.tmp"
TTS_BUDGET_S = 3


@pytest.fixture(scope="module")
def fakes():
    engines = FakeEngines(slow_s=2.0)
    yield engines
    engines.close()


@pytest.fixture(scope="module")
def hard(tmp_path_factory, fakes):
    folder = tmp_path_factory.mktemp("hardening")
    env = private_files_env(folder)
    stale = Path(env["GREENROOM_EMOTION_SETS_DIR"]) / STALE_SAVE  # a save killed half-way, an hour ago
    stale.write_text('{"joy": {"eye_wink_left_')
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    modules = {"tts": {"max_chars": 20000, "time_budget_s": TTS_BUDGET_S},
               "embeddings": {"max_texts": 64, "max_text_chars": 2000, "max_request_tokens": 4096,
                              "max_batch_tokens": 256, "batch_window_ms": 0},
               "talkinghead": talkinghead_settings(folder),
               "websearch": {**fakes.settings(), "engines": ["searxng"]}}
    config = write_config(folder / "plugins.toml", {"max_content_length_mb": 1, "threads": 6, "max_streams": 4},
                          modules)
    proc = ServerProcess(["--config", str(config), "--enable-modules=tts,embeddings,talkinghead,websearch"],
                         env=env, log_path=folder / "server.log")
    proc.folder = folder
    proc.sets = Path(env["GREENROOM_EMOTION_SETS_DIR"])
    yield proc
    proc.stop()


def post(server, path: str, **kw) -> requests.Response:
    kw.setdefault("timeout", 300)
    return requests.post(server.url + path, **kw)


def tts_in_flight(server) -> int:
    return requests.get(server.url + "/api/modules/tts", timeout=30).json()["status"]["in_flight"]


# -- 1. feed slots before the first load ------------------------------------------------------------------

def streams_open(server) -> int:
    return requests.get(server.url + "/api/server/status", timeout=30).json()["streams_open"]


def test_feeds_waiting_for_the_first_load_notice_clients_that_left(hard):
    """No character is loaded: each feed waits. Twice max_streams clients connect and hang up at once."""
    for _ in range(8):
        with socket.create_connection(("127.0.0.1", hard.port), timeout=30) as sock:
            sock.sendall(b"GET /api/talkinghead/result_feed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(12) in (b"HTTP/1.1 200", b"HTTP/1.1 503")  # 503 while earlier slots are freed
    assert wait_until(lambda: streams_open(hard) == 0, timeout=30)  # each waiting feed writes once a second
    with requests.get(hard.url + "/api/talkinghead/result_feed", stream=True, timeout=30) as feed:
        assert feed.status_code == 200
        head = feed.raw.read(40)
        assert head.startswith(b"--frame\r\nContent-Type: image/png"), head


def test_one_client_never_holds_every_stream_slot(hard):
    """max_streams is 4 here, so one address may hold 3 (max_streams_per_client 0 = max_streams - 1)."""
    url = hard.url + "/api/talkinghead/result_feed"
    assert wait_until(lambda: streams_open(hard) == 0, timeout=30)  # the feeds of the test before are gone
    feeds = [requests.get(url, stream=True, timeout=30) for _ in range(3)]
    try:
        assert [f.status_code for f in feeds] == [200, 200, 200]
        refused = requests.get(url, timeout=30)
        assert refused.status_code == 503 and "max_streams_per_client" in refused.json()["error"], refused.text
        assert refused.headers["Retry-After"]
        feeds.pop().close()
        assert wait_until(lambda: streams_open(hard) == 2, timeout=30)
        feeds.append(requests.get(url, stream=True, timeout=30))
        assert feeds[-1].status_code == 200
    finally:
        for feed in feeds:
            feed.close()
    assert wait_until(lambda: streams_open(hard) == 0, timeout=30)


# -- 2. cross-site requests and DNS rebinding ------------------------------------------------------------

def test_pages_of_other_origins_cannot_change_anything(hard):
    target = hard.url + "/api/modules/tts/settings"
    for content_type in ("text/plain", "application/json"):
        reply = requests.post(target, data=b'{"time_budget_s": 7}', timeout=30,
                              headers={"Origin": "http://evil.example", "Content-Type": content_type})
        assert reply.status_code == 403, reply.text
        assert "http://evil.example" in reply.json()["error"] and "cors_origins" in reply.json()["error"]
    assert requests.get(hard.url + "/api/modules/tts/schema").json()["values"]["time_budget_s"] == TTS_BUDGET_S
    preflight = requests.options(target, timeout=30, headers={"Origin": "http://evil.example",
                                                              "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    for origin in ("http://localhost:8000", "http://127.0.0.1:5173", hard.url):  # SillyTavern, a dev page, our own
        reply = requests.post(target, json={"time_budget_s": TTS_BUDGET_S}, headers={"Origin": origin}, timeout=30)
        assert reply.status_code == 200 and reply.headers["Access-Control-Allow-Origin"] == origin, reply.text
    assert requests.post(target, data=b'{"time_budget_s": 3}', timeout=30).status_code == 200  # curl: no Origin


def test_urls_and_secrets_are_not_settings_the_api_changes(hard, fakes):
    target = hard.url + "/api/modules/websearch/settings"
    for change in ({"brave_url": "http://attacker.example/steal"}, {"searxng_url": "http://127.0.0.1:22"},
                   {"brave_api_key": "guessed"}, {"engine_options": {"x": {"url": "http://10.0.0.1"}}},
                   {"webfetch_allow_private": True}, {"webfetch_allowed_hosts": ["192.168.1.1"]}):  # SSRF by webfetch
        reply = requests.post(target, json=change, timeout=30)
        assert reply.status_code == 422 and "allow_remote_settings" in reply.json()["error"], (change, reply.text)
    values = requests.get(hard.url + "/api/modules/websearch/schema", timeout=30).json()["values"]
    assert values["searxng_url"] == fakes.url("searxng") and values["brave_api_key"] == "**********"
    assert requests.post(target, json=values, timeout=30).status_code == 200  # a settings form sent back whole
    assert requests.post(target, json={"max_results": 7}, timeout=30).status_code == 200


def test_api_keys_only_go_to_their_start_up_host(tmp_path, fakes):
    """Even with allow_remote_settings, the Brave key is never sent to another host."""
    config = write_config(tmp_path / "plugins.toml", {"allow_remote_settings": True}, {"websearch": fakes.settings()})
    proc = ServerProcess(["--config", str(config), "--enable-modules=websearch"], log_path=tmp_path / "server.log")
    try:
        target = proc.url + "/api/modules/websearch/settings"
        moved = requests.post(target, json={"brave_url": "http://attacker.example/steal"}, timeout=30)
        assert moved.status_code == 422 and "only sent to 127.0.0.1" in moved.json()["error"], moved.text
        same_host = fakes.url("brave").replace("/res/", "/res/../res/")
        assert requests.post(target, json={"brave_url": same_host}, timeout=30).status_code == 200
        assert requests.post(target, json={"searxng_url": fakes.url("searxng")}, timeout=30).status_code == 200
    finally:
        proc.stop()


def test_other_host_names_are_refused(hard):
    for host in ("attacker.example", f"attacker.example:{hard.port}", "localhost.attacker.example"):
        reply = requests.get(hard.url + "/api/modules", headers={"Host": host}, timeout=30)
        assert reply.status_code == 403 and "allowed_hosts" in reply.json()["error"], (host, reply.text)
    for host in (f"localhost:{hard.port}", f"127.0.0.1:{hard.port}", f"[::1]:{hard.port}"):
        assert requests.get(hard.url + "/api/modules", headers={"Host": host}, timeout=30).status_code == 200


def test_listen_prints_how_to_allow_a_lan_page_and_answers_to_the_machines_names(tmp_path):
    """--listen binds 0.0.0.0 (there is no option for another address), so the server runs with --secure,
    no modules, and only for the few requests the test makes."""
    proc = ServerProcess(["--listen", "--secure", "--api-key-file", str(tmp_path / "key.txt")],
                         log_path=tmp_path / "server.log", startup_timeout=120)
    try:
        started = proc.log()
        hint = next((line for line in started.splitlines() if "cors_origins" in line), None)
        assert hint is not None, started
        assert "http://localhost" in hint and "[server]" in hint and "plugins.toml" in hint, hint
        assert '"http://192.168.1.5:8000"' in hint, hint  # a LAN origin to copy, in TOML's own quoting
        # --listen adds this machine's names to the Host allow-list; strangers' names stay refused.
        for host, status in ((f"{socket.gethostname()}:{proc.port}", 200), ("attacker.example", 403)):
            assert requests.get(proc.url + "/health", headers={"Host": host}, timeout=30).status_code == status, host
    finally:
        assert proc.stop() == 0
    assert "Traceback" not in proc.log()


# -- 3. TTS: long sentences, budget, cancellation -------------------------------------------------------

def test_a_long_sentence_ends_in_503_at_its_budget_and_frees_the_worker(hard):
    reply = post(hard, "/api/tts/speak", json={"text": LONG_SENTENCE})
    assert reply.status_code == 503, reply.text[:300]
    assert "time_budget_s" in reply.json()["error"] and int(reply.headers["Retry-After"]) >= 1
    # The worker drops the rest between two units: nothing of the 2.3 hours is rendered after the answer.
    assert wait_until(lambda: tts_in_flight(hard) == 0, timeout=300)
    assert post(hard, "/api/modules/tts/settings", json={"time_budget_s": 300}).status_code == 200
    try:
        short = post(hard, "/api/tts/speak", json={"text": "Hello there."})
        assert short.status_code == 200 and [w["original"] for w in short.json()["words"]] == ["Hello", "there"]
    finally:
        post(hard, "/api/modules/tts/settings", json={"time_budget_s": TTS_BUDGET_S})


def test_a_long_sentence_streams_in_units_and_ends_with_an_error_line(hard):
    with requests.post(hard.url + "/api/tts/speak", json={"text": LONG_SENTENCE, "stream": True},
                       stream=True, timeout=300) as reply:
        assert reply.status_code == 200
        lines = [json.loads(line) for line in reply.iter_lines() if line]
    *units, last = lines
    assert "error" in last and "time budget" in last["error"], last
    assert all(u["count"] > 100 for u in units)  # one sentence became hundreds of bounded units
    assert wait_until(lambda: tts_in_flight(hard) == 0, timeout=300)


# -- 4. embeddings: micro-batches, fair turns, a token budget ------------------------------------------

def test_embeddings_beyond_the_token_budget_are_413(hard):
    texts = ["A sentence of about a dozen tokens, give or take a few."] * 64  # ~950 tokens: fine
    assert post(hard, "/api/embeddings/compute", json={"text": texts}).status_code == 200
    long_texts = ["word " * 400] * 20  # 20 x 256 tokens (cut at max_seq_length) = 5120 > 4096
    reply = post(hard, "/api/embeddings/compute", json={"text": long_texts})
    assert reply.status_code == 413, reply.text[:300]
    error = reply.json()
    assert "max_request_tokens" in error["error"] and error["tokens"] == 5120 and error["limit"] == 4096
    reply = post(hard, "/v1/embeddings", json={"input": long_texts})  # OpenAI's error shape
    assert reply.status_code == 413 and "max_request_tokens" in reply.json()["error"]["message"], reply.text


def test_a_small_embeddings_request_overtakes_a_big_one(hard):
    calls_before = requests.get(hard.url + "/api/modules/embeddings").json()["status"]["batching"]["model_calls"]
    finished: list[str] = []
    big = ["lorem ipsum dolor sit amet " * 70] * 16  # 16 x 256 tokens: 16 calls of max_batch_tokens = 256

    def send_big():
        reply = post(hard, "/api/embeddings/compute", json={"text": big})
        assert reply.status_code == 200 and len(reply.json()["embedding"]) == 16
        finished.append("big")

    thread = threading.Thread(target=send_big)
    thread.start()
    assert wait_until(lambda: requests.get(hard.url + "/api/modules/embeddings").json()["status"]["batching"][
        "model_calls"] > calls_before, timeout=120)
    small = post(hard, "/api/embeddings/compute", json={"text": "hi"})
    finished.append("small")
    thread.join(300)
    assert small.status_code == 200 and finished == ["small", "big"]
    calls = requests.get(hard.url + "/api/modules/embeddings").json()["status"]["batching"]["model_calls"]
    assert calls - calls_before >= 16


# -- 6. small ones ---------------------------------------------------------------------------------------

def test_names_with_a_trailing_newline_are_refused(hard):
    body = {"joy": {"eye_wink_left_index": 1.0}}
    for name in ["calm%0A", "calm%0D%0A", "calm%20"]:
        reply = requests.put(f"{hard.url}/api/talkinghead/emotion_sets/{name}", json=body, timeout=60)
        assert reply.status_code == 400 and "not a valid set name" in reply.json()["error"], (name, reply.text)
    saved = requests.put(f"{hard.url}/api/talkinghead/emotion_sets/calm", json=body, timeout=60)
    assert saved.status_code == 200, saved.text
    assert sorted(p.name for p in hard.sets.iterdir()) == ["calm.json"]  # and the stale .tmp is gone
    assert post(hard, "/api/talkinghead/load_emotion_set", json={"name": "calm\n"}).status_code in (400, 422)


def test_killed_saves_are_cleaned_at_start_up(hard):
    assert not (hard.sets / STALE_SAVE).exists()


def test_waitress_body_limit_answers_json(hard):
    reply = post(hard, "/api/embeddings/compute", data=b"a" * (2 * 2**20), headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and reply.headers["Content-Type"].startswith("application/json")
    assert "max_content_length_mb" in reply.json()["error"]


@pytest.mark.parametrize("width, height", [(30000, 30000), (12000, 12000), (5000, 5000)])
def test_pixel_bombs_on_talkinghead_load_are_413(hard, width, height):
    reply = post(hard, "/api/talkinghead/load", files={"file": ("x.png", png_bomb(width, height), "image/png")})
    assert reply.status_code == 413 and "pixels" in reply.json()["error"], reply.text[:300]


def test_searxng_titles_and_snippets_are_plain_text(hard, fakes):
    query = "std::vector<int> &lt; a&b"
    reply = post(hard, "/api/websearch/results", json={"query": query, "engine": "searxng"})
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert results and all(query in r["snippet"] for r in results), results


# -- 5. config files and signals ------------------------------------------------------------------------

@pytest.mark.parametrize("content, words", [
    (b"modules = 5\n", "'modules' must be tables"), (b'modules = "x"\n', "'modules' must be tables"),
    (b"server = []\n", "'server' must be a table"), (b"[server]\nport = 5100\n# caf\xe9\n", "not UTF-8"),
    (None, "is a directory")])
def test_bad_config_files_are_one_line_errors_with_exit_code_2(tmp_path, content, words):
    path = tmp_path
    if content is not None:
        path = tmp_path / "plugins.toml"
        path.write_bytes(content)
    done = run_cli(["--config", str(path), "--list-modules"], timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and words in done.stderr and "Traceback" not in done.stderr


def test_a_second_signal_during_shutdown_is_ignored(hard):
    """SIGINT and SIGTERM at once: Python runs the second handler while the first one's shutdown runs."""
    hard.proc.send_signal(signal.SIGINT)
    hard.proc.send_signal(signal.SIGTERM)
    assert hard.proc.wait(60) == 0
    log = hard.log()
    assert "received again while stopping; ignored" in log and "stopped" in log
    assert "Traceback" not in log, log[-3000:]


def test_a_third_signal_forces_a_prompt_exit(tmp_path):
    config = write_config(tmp_path / "plugins.toml", {}, {"tts": {"time_budget_s": 600}})
    proc = ServerProcess(["--config", str(config), "--enable-modules=tts"], log_path=tmp_path / "server.log")

    def speak() -> None:
        try:
            requests.post(proc.url + "/api/tts/speak", json={"text": LONG_SENTENCE}, timeout=300)
        except requests.RequestException:
            pass  # the server goes away mid-request: that is the point

    try:
        threading.Thread(target=speak, daemon=True).start()
        assert wait_until(lambda: tts_in_flight(proc) == 1, timeout=60, interval=0.02)
        # The worker is rendering a unit now: unloading tts waits for it, so the shutdown takes a while.
        proc.proc.send_signal(signal.SIGINT)
        proc.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: "ignored" in proc.log(), timeout=30, interval=0.02)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 128 + signal.SIGTERM
        assert "received a third time; exiting" in proc.log()
    finally:
        proc.stop()
