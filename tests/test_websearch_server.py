"""websearch through the real server process and real HTTP: SillyTavern's call as a browser makes it,
errors as JSON, and no query text anywhere in the log, even at DEBUG (urllib3 logs GET URLs there)."""
from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest
import requests

from .server_process import ServerProcess
from .test_websearch_fakes import FakeEngines

MARKER = "zebra quokka marmalade"


@pytest.fixture(scope="module")
def fakes():
    engines = FakeEngines(slow_s=5.0)
    yield engines
    engines.close()


@pytest.fixture(scope="module")
def server(fakes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("websearch-server")
    settings = {**fakes.settings(), "searxng_timeout_s": 0.5}
    toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    config = folder / "plugins.toml"
    config.write_text(f'[server]\napi_key_file = "{folder / "key.txt"}"\n\n[modules.websearch]\n{toml}\n')
    proc = ServerProcess(["--config", str(config), "--enable-modules=websearch", "--log-level", "DEBUG"],
                         log_path=folder / "server.log")
    yield proc
    proc.stop()


def test_sillytavern_call_over_real_http(server, fakes):
    fakes.reset()
    origin = {"Origin": "http://localhost:8000"}
    preflight = requests.options(server.url + "/api/websearch", headers={
        **origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,bypass-tunnel-reminder"}, timeout=10)
    assert preflight.status_code == 200
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"content-type", "bypass-tunnel-reminder"}  # echoed (flask-cors sorts the list)
    assert requests.get(server.url + "/api/modules", timeout=10).json()["modules"] == ["websearch"]
    answer = requests.post(server.url + "/api/websearch", json={"query": "cats", "engine": "google"},
                           headers={**origin, "Bypass-Tunnel-Reminder": "bypass"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    assert answer.json() == {"results": "\n".join(f"Snippet {i} about cats & more from searxng" for i in (1, 2, 3)),
                             "links": [f"https://example.org/searxng/{i}?q=cats" for i in (1, 2, 3)]}


def test_errors_are_json_over_real_http(server, fakes):
    fakes.reset()
    for engine in ("searxng", "duckduckgo", "brave"):
        fakes.set(engine, "error")
    answer = requests.post(server.url + "/api/websearch", json={"query": "dogs"}, timeout=30)
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "application/json"
    assert answer.json()["engine"] == "searxng" and len(answer.json()["failures"]) == 3
    answer = requests.post(server.url + "/api/websearch", data="", timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "query: Field required"


def test_queries_never_reach_the_log(server, fakes):
    fakes.reset()
    url = server.url + "/api/websearch/results"
    for engine in ("searxng", "duckduckgo", "brave"):  # brave sends the query in a GET URL
        assert requests.post(url, json={"query": MARKER, "engine": engine}, timeout=10).status_code == 200
    assert requests.post(url, json={"query": MARKER, "engine": "searxng"}, timeout=10).json()["cached"] is True
    fakes.set("searxng", "slow")
    fakes.set("duckduckgo", "malformed")
    fakes.set("brave", "ratelimit")
    failed = requests.post(url, json={"query": MARKER + " again"}, timeout=30)
    assert failed.status_code == 502
    assert requests.post(url, json={"query": MARKER * 30}, timeout=10).status_code == 400
    log = server.log()
    assert "search: 22-char query, engine duckduckgo -> duckduckgo, 3 results" in log
    assert "engine searxng failed (timeout)" in log and "GET /brave/res/v1/web/search?<redacted>" in log
    for form in (MARKER, quote_plus(MARKER), "zebra", "quokka", "marmalade"):
        assert form not in log, form
