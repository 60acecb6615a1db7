"""Scale-out (issue 19). The slow tests: deploy/greenroom-cluster.sh starts HAProxy and three real workers on
loopback (talkinghead, classify and raven, CPU), and everything goes through HAProxy as a client would.

Checks: an avatar instance always reaches the worker holding it, wherever the request names it (query,
header, a client-chosen id learned from the reply, Raven's JSON bodies); ten instances spread over the workers; classify
spreads over all three; SIGTERM on one worker drains it (/health 503 with the reason, no new instances,
its open feed keeps running) and loses no classify request, and afterwards its avatars get a 404 naming the
instance, and loading one again under its id puts it on a live worker that its calls then reach; an emotion
set saved through HAProxy, and a character put in the shared data folder, are seen by every worker. The
drained worker must exit within EXIT_MARGIN_S of the drain timeout.
The quick tests check the same rules in process: where a request names its instance, the drain's clock,
/health while draining, the refusal of new instances, and that a stop gives up on a module whose unload hangs.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

from types import SimpleNamespace

import pytest
import requests
from flask import Flask

from greenroom import ApiError
from greenroom.app import create_app, host_of
from greenroom.server.draining import NOTICE_S, Drain
from greenroom.errors import Busy
from greenroom.module import Module
from greenroom_modules.talkinghead.request import refuse_new_while_draining, requested_instance_id

from .plugins_helper import plugin
from .server_process import ROOT, free_port_run

WORKERS = 3
DRAIN_S = 8
EXIT_MARGIN_S = 20
WORKER = "X-Greenroom-Worker"   # set by deploy/haproxy.cfg: the server that answered
CONFIG = """[modules.talkinghead]
precompute_emotions = false
background_nice = 0
max_instances = 8
"""


class Cluster:
    """The launcher's process group: ``url`` is HAProxy's front, ``worker(n)`` a worker's own address."""

    def __init__(self, run_dir: Path, data_dir: Path) -> None:
        self.run_dir = run_dir
        self.data_dir = data_dir
        self.base = free_port_run(WORKERS)
        self.front = self.base  # workers listen on base + 1 ... base + WORKERS
        self.url = f"http://127.0.0.1:{self.front}"
        config = run_dir / "plugins.toml"
        config.write_text(CONFIG)
        env = {**os.environ, "GREENROOM_WORKERS": str(WORKERS), "GREENROOM_FRONT": f"127.0.0.1:{self.front}",
               "GREENROOM_BASE_PORT": str(self.base), "GREENROOM_DRAIN_S": str(DRAIN_S),
               "GREENROOM_DATA_DIR": str(data_dir), "GREENROOM_RUN_DIR": str(run_dir), "PYTHONUNBUFFERED": "1"}
        self.log = open(run_dir / "cluster.log", "wb")
        self.proc = subprocess.Popen([str(ROOT / "deploy" / "greenroom-cluster.sh"), "--config", str(config),
                                      "--enable-modules=talkinghead,classify,raven"], cwd=run_dir, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def worker(self, n: int) -> str:
        return f"http://127.0.0.1:{self.base + n}"

    def pid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text())

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.run_dir.glob("*.log")))

    def wait_ready(self, timeout: float = 900) -> None:
        """Every worker answers /health and HAProxy has seen them all up (it marks a worker up after 2 checks)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline and len(seen) < WORKERS:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the launcher exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                seen.add(requests.get(self.url + "/health", timeout=5).headers.get(WORKER, ""))
            except requests.RequestException:
                time.sleep(0.5)
            seen.discard("")
        if len(seen) < WORKERS:
            raise RuntimeError(f"HAProxy saw only {sorted(seen)} after {timeout} s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the launcher drains the workers, then stops HAProxy
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cluster")
    c = Cluster(run_dir, tmp_path_factory.mktemp("shared-data"))
    try:
        c.wait_ready()
        yield c
    finally:
        c.stop()


def load(cluster: Cluster, **params: str) -> requests.Response:
    r = requests.post(cluster.url + "/api/talkinghead/load", params=params, data={"character": "lambda_00"},
                      timeout=120)
    assert r.status_code == 200, r.text
    return r


def created(cluster: Cluster) -> tuple[str, str]:
    """A new instance (new=true): its id and the worker that created it."""
    r = load(cluster, new="true")
    instance_id = r.json()["instance_id"]
    assert r.headers["X-Instance-Id"] == instance_id
    return instance_id, r.headers[WORKER]


@pytest.mark.slow
def test_an_instance_always_reaches_its_worker_wherever_the_id_is_given(cluster):
    instance_id, worker = created(cluster)
    assert instance_id.startswith(worker + "-"), "--worker-id prefixes the ids the worker creates"
    calls = [
        lambda: requests.post(cluster.url + "/api/talkinghead/set_emotion", params={"instance_id": instance_id},
                              json={"emotion_name": "joy"}, timeout=30),
        lambda: requests.post(cluster.url + "/api/talkinghead/set_emotion", headers={"X-Instance-Id": instance_id},
                              json={"emotion_name": "anger"}, timeout=30),
        lambda: requests.post(cluster.url + "/api/talkinghead/start_talking", json={"instance_id": instance_id},
                              headers={"X-Instance-Id": instance_id}, timeout=30),
        lambda: requests.get(cluster.url + "/api/talkinghead/status", params={"instance_id": instance_id}, timeout=30),
        lambda: requests.get(cluster.url + "/api/talkinghead/frame", headers={"X-Instance-Id": instance_id}, timeout=30),
    ]
    for _ in range(3):
        for call in calls:
            r = call()
            assert r.status_code == 200, r.text
            assert (r.headers[WORKER], r.headers["X-Instance-Id"]) == (worker, instance_id)
    assert requests.get(cluster.url + "/api/talkinghead/emotions", params={"instance_id": instance_id},
                        timeout=30).json()["current"] == "anger"


@pytest.mark.slow
def test_a_client_chosen_id_sticks_to_the_worker_that_created_it(cluster):
    r = load(cluster, instance_id="alice")
    assert r.json()["created"] and r.headers["X-Instance-Id"] == "alice"
    worker = r.headers[WORKER]
    for _ in range(6):  # leastconn alone would spread these; the id learned from the reply keeps them there
        r = requests.get(cluster.url + "/api/talkinghead/animator_settings", headers={"X-Instance-Id": "alice"},
                         timeout=30)
        assert r.status_code == 200 and r.headers[WORKER] == worker


@pytest.mark.slow
def test_ravens_avatar_client_reaches_its_worker_by_the_id_in_its_json_bodies(cluster):
    """Raven's client names its instance only in JSON bodies (the feed: the query); HAProxy reads those."""
    picture = (ROOT / "assets" / "characters" / "lambda_00.png").read_bytes()
    r = requests.post(cluster.url + "/api/avatar/load", files={"file": ("lambda_00.png", picture, "image/png")},
                      timeout=120)
    assert r.status_code == 200, r.text
    instance_id, worker = r.json()["instance_id"], r.headers[WORKER]
    assert r.headers["X-Instance-Id"] == instance_id
    calls = [("start", {})] + [("set_emotion", {"emotion_name": e}) for e in ("joy", "anger", "surprise", "fear")]
    for name, extra in calls:  # leastconn alone would spread these
        r = requests.post(cluster.url + f"/api/avatar/{name}", json={"instance_id": instance_id, **extra}, timeout=30)
        assert (r.status_code, r.headers[WORKER], r.headers["X-Instance-Id"]) == (200, worker, instance_id), r.text
    with requests.get(cluster.url + "/api/avatar/result_feed", params={"instance_id": instance_id}, stream=True,
                      timeout=30) as feed:
        assert feed.status_code == 200 and feed.headers[WORKER] == worker
    r = requests.post(cluster.url + "/api/avatar/unload", json={"instance_id": instance_id}, timeout=30)
    assert (r.status_code, r.headers[WORKER]) == (200, worker)


@pytest.mark.slow
def test_calls_naming_no_instance_stick_to_the_default_instance(cluster):
    """Stock SillyTavern: one avatar, no ids; its calls all reach the worker that holds the default instance."""
    r = requests.post(cluster.url + "/api/talkinghead/load", data={"character": "lambda_01"}, timeout=120)
    assert r.status_code == 200 and r.headers["X-Instance-Id"] == "default", r.text
    worker = r.headers[WORKER]
    for _ in range(6):
        r = requests.post(cluster.url + "/api/talkinghead/set_emotion", json={"emotion_name": "joy"}, timeout=30)
        assert (r.status_code, r.text, r.headers[WORKER]) == (200, "emotion set to joy", worker)
    assert requests.get(cluster.url + "/api/talkinghead/unload", timeout=30).headers[WORKER] == worker


@pytest.mark.slow
def test_ids_that_disagree_are_refused_naming_instance_id(cluster):
    r = requests.post(cluster.url + "/api/talkinghead/set_emotion", params={"instance_id": "alice"},
                      headers={"X-Instance-Id": "bob"}, json={"emotion_name": "joy"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"].startswith("instance_id:")


@pytest.mark.slow
def test_ten_instances_spread_over_the_workers(cluster):
    made = [created(cluster) for _ in range(10)]
    per_worker = Counter(worker for _, worker in made)
    assert len(per_worker) == WORKERS, per_worker
    assert all(instance_id.startswith(worker + "-") for instance_id, worker in made)
    for instance_id, worker in made:
        assert requests.post(cluster.url + "/api/talkinghead/unload", json={"instance_id": instance_id},
                             headers={"X-Instance-Id": instance_id}, timeout=30).headers[WORKER] == worker


def classify(url: str) -> requests.Response:
    return requests.post(url + "/api/classify", json={"text": "I am so happy to see you!"}, timeout=60)


@pytest.mark.slow
def test_classify_spreads_over_all_workers(cluster):
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(8):
            r = classify(cluster.url)
            assert r.status_code == 200 and r.json()["classification"], r.text
            with lock:
                seen[r.headers[WORKER]] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(seen.values()) == 32 and len(seen) == WORKERS, seen


@pytest.mark.slow
def test_a_saved_emotion_set_is_visible_through_every_worker(cluster):
    emotions = {"calm": {"eye_relaxed_left_index": 0.5}, "joy": {"eye_happy_wink_left_index": 0.25, "mouth_aaa_index": 0.75}}
    r = requests.put(cluster.url + "/api/talkinghead/emotion_sets/shared_look", json=emotions, timeout=30)
    assert r.status_code == 200, r.text
    assert (cluster.data_dir / "emotions" / "sets" / "shared_look.json").is_file()
    for n in range(1, WORKERS + 1):
        got = requests.get(cluster.worker(n) + "/api/talkinghead/emotion_sets/shared_look", timeout=30)
        assert got.status_code == 200 and got.json() == emotions, got.text
    changed = {"joy": {"mouth_aaa_index": 0.5}}  # a save through one worker replaces what every worker reads
    requests.put(cluster.worker(1) + "/api/talkinghead/emotion_sets/shared_look", json=changed, timeout=30)
    for n in range(1, WORKERS + 1):
        assert requests.get(cluster.worker(n) + "/api/talkinghead/emotion_sets/shared_look",
                            timeout=30).json() == changed


@pytest.mark.slow
def test_a_character_in_the_shared_data_folder_is_offered_by_every_worker(cluster):
    folder = cluster.data_dir / "characters"
    folder.mkdir(exist_ok=True)
    shutil.copy(ROOT / "assets" / "characters" / "lambda_00.png", folder / "shared_guest.png")
    for n in range(1, WORKERS + 1):
        names = requests.get(cluster.worker(n) + "/api/talkinghead/characters", timeout=30).json()["characters"]
        assert "shared_guest" in names, names


@pytest.mark.slow
def test_sigterm_drains_a_worker_and_loses_no_stateless_request(cluster):
    instance_id, victim = created(cluster)
    n = int(victim[1:])
    feed = requests.get(cluster.url + "/api/talkinghead/result_feed", params={"instance_id": instance_id},
                        stream=True, timeout=30)
    assert feed.status_code == 200 and feed.headers[WORKER] == victim
    chunks = feed.iter_content(4096)
    next(chunks)

    failures: list[str] = []
    answered = Counter()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                r = classify(cluster.url)
                answered[r.headers.get(WORKER)] += 1
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
            except requests.RequestException as exc:
                failures.append(repr(exc))

    clients = [threading.Thread(target=client) for _ in range(3)]
    for t in clients:
        t.start()
    try:
        time.sleep(1)
        pid = cluster.pid(victim)
        os.kill(pid, signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.5)
        health = requests.get(cluster.worker(n) + "/health", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "draining"
        assert "SIGTERM" in health.json()["reason"]
        refused = requests.post(cluster.worker(n) + "/api/talkinghead/load", params={"new": "true"},
                                data={"character": "lambda_00"}, timeout=30)
        assert refused.status_code == 503 and "draining" in refused.json()["error"]
        assert refused.headers["Retry-After"]
        t0 = time.monotonic()
        received = 0
        while time.monotonic() - t0 < DRAIN_S - 3:  # the open feed keeps running while the worker drains
            received += len(next(chunks))
        assert received > 0
        # A correctness bound, not a speed figure: the stop after the drain waits at most UNLOAD_GRACE_S for
        # the modules and 5 s for waitress's threads (a background pose on a starved CPU once held it 40 s).
        deadline = signalled + DRAIN_S + EXIT_MARGIN_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid), f"the worker exits within {EXIT_MARGIN_S} s of the drain timeout:\n{cluster.logs()}"
        print(f"worker gone {time.monotonic() - signalled:.1f} s after SIGTERM (drain timeout {DRAIN_S} s)")
        time.sleep(1.5)
    finally:
        stop.set()
        for t in clients:
            t.join()
        feed.close()
    assert not failures, failures[:5]
    assert answered[victim] > 0 and len(answered) == WORKERS, answered
    gone = requests.post(cluster.url + "/api/talkinghead/set_emotion", headers={"X-Instance-Id": instance_id},
                         json={"emotion_name": "joy"}, timeout=30)
    assert gone.status_code == 404 and gone.headers[WORKER] != victim
    assert gone.json()["instance_id"] == instance_id and instance_id in gone.json()["error"]
    assert classify(cluster.url).status_code == 200
    # What the SillyTavern extension and the web page then do: load it again under the same id. The 404 taught
    # HAProxy the worker that answered it; the new instance lives there and its calls stick to it.
    again = requests.post(cluster.url + "/api/talkinghead/load", params={"instance_id": instance_id},
                          data={"character": "lambda_00"}, timeout=120)
    assert again.status_code == 200 and again.json()["created"], again.text
    assert again.headers[WORKER] == gone.headers[WORKER]
    for _ in range(3):
        r = requests.post(cluster.url + "/api/talkinghead/set_emotion", headers={"X-Instance-Id": instance_id},
                          json={"emotion_name": "joy"}, timeout=30)
        assert (r.status_code, r.headers[WORKER]) == (200, again.headers[WORKER]), r.text


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (the launcher reaps its children, so a finished one is gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


# -- quick checks, in process ----------------------------------------------------------------------------------

@pytest.mark.parametrize("query, header, body, expected", [
    ("", None, None, None), ("?instance_id=a", None, None, "a"), ("", "a", None, "a"), ("", None, "a", "a"),
    ("?instance_id=a", "a", "a", "a"),
])
def test_an_instance_is_named_in_the_query_the_header_or_the_body(query, header, body, expected):
    headers = {"X-Instance-Id": header} if header else {}
    with Flask(__name__).test_request_context("/api/talkinghead/status" + query, headers=headers):
        assert requested_instance_id(SimpleNamespace(instance_id=body)) == expected


@pytest.mark.parametrize("query, header, body", [("?instance_id=a", "b", None), ("", "a", "b"),
                                                 ("?instance_id=a", None, "b")])
def test_places_that_name_different_instances_are_a_400(query, header, body):
    headers = {"X-Instance-Id": header} if header else {}
    with Flask(__name__).test_request_context("/x" + query, headers=headers):
        with pytest.raises(ApiError) as caught:
            requested_instance_id(SimpleNamespace(instance_id=body))
    assert caught.value.status == 400 and str(caught.value).startswith("instance_id:")


def test_a_malformed_header_id_is_a_400_naming_instance_id():
    from pydantic import ValidationError
    with Flask(__name__).test_request_context("/x", headers={"X-Instance-Id": "../etc"}):
        with pytest.raises(ValidationError, match="instance_id"):
            requested_instance_id()


def test_health_answers_503_with_the_reason_while_draining(make_config):
    app = create_app(make_config(), discover=False)
    client = app.test_client()
    assert client.get("/health").status_code == 200
    host_of(app).context.draining = "SIGTERM received; draining for up to 30 s"
    r = client.get("/health")
    assert r.status_code == 503 and r.json["status"] == "draining" and r.json["reason"].startswith("SIGTERM")


def test_a_draining_worker_reloads_its_instances_but_creates_none():
    held = {"mine"}
    module = SimpleNamespace(context=SimpleNamespace(draining=""),
                             manager=SimpleNamespace(find=lambda i: object() if (i or "default") in held else None))
    refuse_new_while_draining(module, True, None)  # not draining: anything goes
    module.context.draining = "SIGTERM received"
    refuse_new_while_draining(module, False, "mine")
    for new, instance_id in ((True, None), (False, "other"), (False, None)):
        with pytest.raises(Busy):
            refuse_new_while_draining(module, new, instance_id)


def test_the_drain_ends_at_its_timeout_or_once_idle_after_the_notice_time(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("greenroom.server.draining.time", SimpleNamespace(monotonic=lambda: now[0]))
    context = SimpleNamespace(draining="")
    drain = Drain(context, 30)
    assert not drain.over(busy=False)  # not started
    drain.start("SIGTERM")
    assert "SIGTERM" in context.draining
    now[0] += NOTICE_S / 2
    assert not drain.over(busy=False)  # the balancer may not have noticed yet
    now[0] += NOTICE_S
    assert drain.over(busy=False) and not drain.over(busy=True)
    now[0] += 30
    assert drain.over(busy=True)


def test_the_first_signal_drains_and_the_second_stops():
    from greenroom.server.serve import _Signals, _Stop
    drain = Drain(SimpleNamespace(draining=""), 30)
    signals = _Signals(drain)
    signals(signal.SIGTERM, None)
    assert drain.started is not None and signals.received == 0
    with pytest.raises(_Stop):
        signals(signal.SIGTERM, None)


def test_without_a_drain_the_first_signal_stops_and_the_second_is_ignored():
    from greenroom.server.serve import _Signals, _Stop
    signals = _Signals()
    with pytest.raises(_Stop):
        signals(signal.SIGTERM, None)
    assert signals(signal.SIGTERM, None) is None and signals.received == 2


class SlowToUnload(Module):
    """A module whose unload hangs, like a THA3 pose in progress on a starved CPU."""
    name = "slow_unload"
    description = "Unloads only when the test lets it."
    release = threading.Event()

    def unload(self) -> None:
        self.release.wait(60)


def test_a_stop_waits_a_bounded_time_for_modules_to_unload(make_config):
    from greenroom.server.serve import _unload_within
    app = create_app(make_config(enable=["slow_unload"]), plugins=[("slow", plugin(SlowToUnload))], discover=False)
    host = host_of(app)
    try:
        t0 = time.monotonic()
        assert _unload_within(host, 0.5) is False
        assert time.monotonic() - t0 < 5
        assert host.context.stopping.is_set(), "streams are told to end before the unload starts"
    finally:
        SlowToUnload.release.set()
