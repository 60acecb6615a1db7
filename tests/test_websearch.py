"""websearch in-process: every engine shape against local fake engines, SillyTavern's exact shape,
fallback, 502/504, timeouts, cache, pacing, cool-down, bad input, live settings and plugin engines."""
from __future__ import annotations

import logging
import threading
import time

import pytest
from pydantic import Field

import greenroom_modules.websearch.plugin as websearch_plugin
from greenroom.app import create_app, host_of
from greenroom_modules.websearch.engines import Engine, EngineSettings, Hit, Query
from greenroom_modules.websearch.text import html_to_text

from .plugins_helper import plugin
from .test_websearch_fakes import BRAVE_KEY, FakeEngines


@pytest.fixture(scope="module")
def fakes():
    engines = FakeEngines(slow_s=8.0)
    yield engines
    engines.close()


@pytest.fixture
def client_with(make_config, fakes):
    """``client_with(**settings)`` -> a Flask test client of an app serving websearch against the fakes."""
    fakes.reset()
    apps = []

    def make(plugins=(), **settings):
        modules = {"websearch": {**fakes.settings(), **settings}}
        app = create_app(make_config(enable=["websearch"], modules=modules),
                         plugins=[("websearch", websearch_plugin), *plugins], discover=False)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        host_of(app).shutdown()


def search(client, query="cats and dogs", route="/api/websearch/results", **body):
    return client.post(route, json={"query": query, **body})


# -- each engine's shape ---------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ["searxng", "duckduckgo", "brave"])
def test_each_engine_gives_clean_structured_results(client_with, fakes, engine):
    client = client_with()
    answer = search(client, engine=engine, max_results=2)
    assert answer.status_code == 200, answer.json
    data = answer.json
    assert set(data) == {"results", "engine", "cached", "failed"}
    assert data["engine"] == engine and data["cached"] is False and data["failed"] == []
    assert data["results"] == [
        {"title": f"{engine} result {i}", "url": f"https://example.org/{engine}/{i}?q=cats%20and%20dogs",
         "snippet": f"Snippet {i} about cats and dogs & more from {engine}", "engine": engine} for i in (1, 2)]
    assert len(fakes.requests_to(engine)) == 1


def test_engines_receive_the_request_each_api_expects(client_with, fakes):
    client = client_with(safesearch="strict", language="de-DE", searxng_engines="google,bing",
                         duckduckgo_region="de-de")
    for engine in ("searxng", "duckduckgo", "brave"):
        assert search(client, "rust borrow checker", engine=engine).status_code == 200
    sx, = fakes.requests_to("searxng")
    assert (sx.method, sx.params["format"], sx.params["q"]) == ("POST", "json", "rust borrow checker")
    assert (sx.params["safesearch"], sx.params["language"], sx.params["engines"]) == ("2", "de-DE", "google,bing")
    ddg, = fakes.requests_to("duckduckgo")
    assert (ddg.method, ddg.params["q"], ddg.params["kl"], ddg.params["kp"]) == (
        "POST", "rust borrow checker", "de-de", "1")
    brave, = fakes.requests_to("brave")
    assert (brave.method, brave.params["q"], brave.params["count"], brave.params["safesearch"]) == (
        "GET", "rust borrow checker", "20", "strict")
    assert brave.params["search_lang"] == "de" and brave.headers["X-Subscription-Token"] == BRAVE_KEY
    assert all(s.headers["User-Agent"].startswith("Mozilla/5.0 (compatible; Greenroom") for s in fakes.seen)
    assert not any("Cookie" in s.headers for s in fakes.seen)


def test_duckduckgo_skips_adverts_and_unwraps_redirect_links(client_with, fakes):
    data = search(client_with(), engine="duckduckgo").json
    urls = [r["url"] for r in data["results"]]
    assert urls == [f"https://example.org/duckduckgo/{i}?q=cats%20and%20dogs" for i in (1, 2, 3)]
    assert all("An advert" not in r["title"] for r in data["results"])


@pytest.mark.parametrize("engine", ["searxng", "duckduckgo", "brave"])
def test_no_results_is_an_empty_answer_not_an_error(client_with, fakes, engine):
    fakes.set(engine, "empty")
    answer = search(client_with(fallback=False), engine=engine)
    assert answer.status_code == 200 and answer.json["results"] == [] and answer.json["engine"] == engine


# -- SillyTavern's shape and names -----------------------------------------------------------------

def test_sillytavern_shape_is_exact(client_with, fakes):
    client = client_with(engines=["searxng"])
    answer = client.post("/api/websearch", data='{"query": "cats", "engine": "google"}',
                         headers={"Bypass-Tunnel-Reminder": "bypass", "Origin": "http://localhost:8000"})
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    data = answer.json
    assert list(data) == ["results", "links"]
    assert isinstance(data["results"], str)
    assert data["results"].split("\n") == [f"Snippet {i} about cats & more from searxng" for i in (1, 2, 3)]
    assert data["links"] == [f"https://example.org/searxng/{i}?q=cats" for i in (1, 2, 3)]
    assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"


def test_sillytavern_results_count_follows_max_results(client_with):
    data = client_with(max_results=2).post("/api/websearch", json={"query": "cats", "engine": "duckduckgo"}).json
    assert len(data["results"].split("\n")) == 2 and len(data["links"]) == 2


def test_sillytavern_engine_names_map_to_configured_engines(client_with, fakes):
    client = client_with()  # google -> auto (first usable: searxng); duckduckgo -> duckduckgo
    assert search(client, engine="google").json["engine"] == "searxng"
    assert search(client, engine="duckduckgo").json["engine"] == "duckduckgo"
    assert search(client, engine="Google ").json["engine"] == "searxng"
    assert search(client).json["engine"] == "searxng"  # engine omitted: auto
    assert search(client, engine=None).json["engine"] == "searxng"

    client = client_with(sillytavern_google="brave", sillytavern_duckduckgo="searxng",
                         engines=["duckduckgo", "searxng", "brave"])
    assert search(client, "x1", engine="google").json["engine"] == "brave"
    assert search(client, "x1", engine="duckduckgo").json["engine"] == "searxng"
    assert search(client, "x1", engine="auto").json["engine"] == "duckduckgo"

    # A SillyTavern name whose engine is not usable means 'auto' rather than failing the client.
    client = client_with(engines=["searxng"], sillytavern_duckduckgo="duckduckgo")
    assert search(client, "x2", engine="duckduckgo").json["engine"] == "searxng"


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ({}, "query: Field required"),
    ({"query": ""}, "query: must not be empty"),
    ({"query": " \n\t "}, "query: must not be empty"),
    ({"query": 42}, "query: Input should be a valid string"),
    ({"query": None}, "query: Input should be a valid string"),
    ({"query": "x" * 501}, "query: 501 characters, more than the limit of 500"),
    ({"query": "x" * 100_001}, "query: String should have at most 100000 characters"),
    ({"query": "cats", "engine": "bing"}, "engine: unknown engine 'bing'; use one of: auto, google, duckduckgo"),
    ({"query": "cats", "engine": 7}, "engine: Input should be a valid string"),
    ({"query": "cats", "max_results": 0}, "max_results: Input should be greater than or equal to 1"),
    ({"query": "cats", "max_results": 51}, "max_results: Input should be less than or equal to 50"),
])
@pytest.mark.parametrize("route", ["/api/websearch", "/api/websearch/results"])
def test_bad_input_is_400_naming_the_field(client_with, fakes, body, message, route):
    if "max_results" in body and route == "/api/websearch":
        body = {k: v for k, v in body.items() if k != "max_results"} | {"engine": "nope"}
        message = "engine: unknown engine 'nope'"
    answer = client_with().post(route, json=body)
    assert answer.status_code == 400
    assert answer.json["error"].startswith(message)
    assert fakes.seen == []


def test_unparseable_bodies_are_400(client_with, fakes):
    client = client_with()
    assert client.post("/api/websearch", data="{not json").status_code == 400
    assert client.post("/api/websearch", json=["cats"]).json["error"] == "request body must be a JSON object"
    assert fakes.seen == []


def test_unavailable_engine_is_400_saying_why(client_with, fakes):
    answer = search(client_with(brave_api_key=""), engine="brave")
    assert answer.status_code == 400
    assert "'brave' is not available: no API key (set brave_api_key or GREENROOM_BRAVE_API_KEY)" in answer.json["error"]
    answer = search(client_with(engines=["searxng"]), engine="duckduckgo")  # ST name: falls to auto
    assert answer.status_code == 200
    answer = search(client_with(engines=["searxng"], sillytavern_duckduckgo="searxng"), engine="brave")
    assert "not listed in the 'engines' setting" in answer.json["error"]


def test_longer_query_allowed_when_configured_and_whitespace_collapsed(client_with, fakes):
    client = client_with(max_query_chars=1000)
    assert search(client, "x" * 1000).status_code == 200
    assert search(client, "  many\n\nlines\tand   spaces  ", engine="searxng").status_code == 200
    assert fakes.requests_to("searxng")[-1].params["q"] == "many lines and spaces"


# -- failure, fallback, 502/504 --------------------------------------------------------------------

@pytest.mark.parametrize("mode, kind, words", [
    ("error", "http", "HTTP 500"),
    ("malformed", "malformed", "not JSON"),
    ("ratelimit", "rate_limited", "HTTP 429"),
    ("forbidden", "config", "add 'json' to search.formats"),
    ("slow", "timeout", "no answer from 127.0.0.1"),
    ("drip", "timeout", "not complete within 0.5 s"),
    ("huge", "malformed", "larger than"),
    ("close", "connection", "127.0.0.1"),
])
def test_a_failing_engine_falls_back_to_the_next(client_with, fakes, mode, kind, words):
    fakes.set("searxng", mode)
    started = time.monotonic()
    answer = search(client_with(searxng_timeout_s=0.5))
    assert answer.status_code == 200, answer.json
    assert time.monotonic() - started < fakes.slow_s  # never waited for the slow answer itself
    data = answer.json
    assert data["engine"] == "duckduckgo" and len(data["results"]) == 3
    failed, = data["failed"]
    assert failed["engine"] == "searxng" and failed["kind"] == kind and words in failed["error"], failed
    assert "cats" not in failed["error"]


@pytest.mark.parametrize("engine, mode, kind, words", [
    ("duckduckgo", "captcha", "rate_limited", "CAPTCHA"),
    ("duckduckgo", "malformed", "malformed", "no results list"),
    ("brave", "malformed", "malformed", "not an object"),
    ("brave", "forbidden", "config", "HTTP 401"),
])
def test_engine_specific_failures(client_with, fakes, engine, mode, kind, words):
    fakes.set(engine, mode)
    answer = search(client_with(engines=[engine, "searxng"]), engine=engine)
    failed, = answer.json["failed"]
    assert answer.json["engine"] == "searxng"
    assert (failed["engine"], failed["kind"]) == (engine, kind) and words in failed["error"]


def test_wrong_brave_key_names_the_api_error(client_with, fakes):
    answer = search(client_with(brave_api_key="wrong", fallback=False), engine="brave")
    assert answer.status_code == 502
    assert "HTTP 422: the API refused the request (SUBSCRIPTION_TOKEN_INVALID)" in answer.json["error"]


def test_all_engines_failing_is_502_naming_them(client_with, fakes):
    fakes.set("searxng", "error")
    fakes.set("duckduckgo", "malformed")
    fakes.set("brave", "forbidden")
    answer = client_with().post("/api/websearch", json={"query": "cats", "engine": "google"})
    assert answer.status_code == 502
    data = answer.json
    assert data["error"].startswith("all search engines failed ('searxng', 'duckduckgo', 'brave'): searxng: HTTP 500")
    assert data["engine"] == "searxng"
    assert [(f["engine"], f["kind"]) for f in data["failures"]] == [
        ("searxng", "http"), ("duckduckgo", "malformed"), ("brave", "config")]


def test_all_engines_timing_out_is_504(client_with, fakes):
    for engine in ("searxng", "duckduckgo"):
        fakes.set(engine, "slow")
    answer = search(client_with(engines=["searxng", "duckduckgo"], searxng_timeout_s=0.3, duckduckgo_timeout_s=0.3))
    assert answer.status_code == 504
    assert answer.json["error"].startswith("all search engines failed ('searxng', 'duckduckgo'): searxng: no answer")
    assert {f["kind"] for f in answer.json["failures"]} == {"timeout"}


def test_single_engine_without_fallback_names_it(client_with, fakes):
    fakes.set("duckduckgo", "slow")
    answer = search(client_with(fallback=False, duckduckgo_timeout_s=0.3), engine="duckduckgo")
    assert answer.status_code == 504 and answer.json["engine"] == "duckduckgo"
    assert answer.json["error"].startswith("search engine 'duckduckgo' failed: no answer from 127.0.0.1")
    assert fakes.requests_to("searxng") == []


def test_rate_limited_everywhere_gives_retry_after_and_cools_down(client_with, fakes):
    fakes.set("searxng", "ratelimit")
    client = client_with(engines=["searxng"])
    answer = search(client)
    assert answer.status_code == 502 and answer.headers["Retry-After"] == "30"
    assert answer.json["failures"][0]["kind"] == "rate_limited"
    # The engine asked for 30 s of quiet: the next search does not even ask it.
    answer = search(client, "another query")
    assert answer.status_code == 502 and "cooling down" in answer.json["error"]
    assert len(fakes.requests_to("searxng")) == 1
    engines = {e["name"]: e for e in client.get("/api/websearch/engines").json["engines"]}
    assert 0 < engines["searxng"]["cooling_down_s"] <= 30
    assert engines["searxng"]["failures"] == {"rate_limited": 1}


def test_a_captcha_cools_duckduckgo_down_for_its_cooldown(client_with, fakes):
    fakes.set("duckduckgo", "captcha")
    client = client_with(duckduckgo_cooldown_s=120)
    assert search(client, engine="duckduckgo").json["engine"] == "searxng"
    fakes.set("duckduckgo", "ok")
    data = search(client, "again", engine="duckduckgo").json
    assert data["engine"] == "searxng" and "cooling down" in data["failed"][0]["error"]
    assert len(fakes.requests_to("duckduckgo")) == 1


# -- cache -----------------------------------------------------------------------------------------

def test_cache_answers_repeats_without_asking_the_engine(client_with, fakes):
    client = client_with()
    first = search(client, max_results=1).json
    second = search(client, "  cats   and dogs ", max_results=3).json
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["engine"] == "searxng" and len(second["results"]) == 3
    assert second["results"][0] == first["results"][0]
    assert len(fakes.requests_to("searxng")) == 1
    assert client.post("/api/websearch", json={"query": "cats and dogs"}).status_code == 200
    assert len(fakes.requests_to("searxng")) == 1
    search(client, "cats and dogs", engine="duckduckgo")  # another engine first: another entry
    assert len(fakes.requests_to("duckduckgo")) == 1
    cache = client.get("/api/modules/websearch").json["status"]["cache"]
    assert cache["entries"] == 2 and cache["hits"] == 2


def test_cache_keeps_the_answer_of_the_fallback_engine(client_with, fakes):
    fakes.set("searxng", "error")
    client = client_with()
    assert search(client).json["engine"] == "duckduckgo"
    again = search(client).json
    assert again["cached"] is True and again["engine"] == "duckduckgo"
    assert len(fakes.requests_to("searxng")) == 1


def test_cache_off_asks_every_time(client_with, fakes):
    client = client_with(cache_ttl_s=0)
    assert [search(client).json["cached"] for _ in range(3)] == [False] * 3
    assert len(fakes.requests_to("searxng")) == 3


def test_failures_are_not_cached(client_with, fakes):
    fakes.set("searxng", "error")
    client = client_with(engines=["searxng"])
    assert search(client).status_code == 502
    fakes.set("searxng", "ok")
    assert search(client).status_code == 200


def test_concurrent_identical_searches_ask_the_engine_once(client_with, fakes):
    fakes.set("searxng", "ok", delay_s=0.3)
    app = client_with().application
    answers = []

    def run():
        answers.append(search(app.test_client()).json)

    threads = [threading.Thread(target=run) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 5 and all(a["engine"] == "searxng" for a in answers)
    assert len(fakes.requests_to("searxng")) == 1
    assert sorted(a["cached"] for a in answers) == [False, True, True, True, True]


# -- polite pacing ---------------------------------------------------------------------------------

def test_requests_to_one_engine_are_spaced(client_with, fakes):
    client = client_with(engines=["searxng"], searxng_min_interval_s=0.4, cache_ttl_s=0)
    for i in range(3):
        assert search(client, f"query {i}").status_code == 200
    times = [s.at for s in fakes.requests_to("searxng")]  # arrival times: allow for transit jitter
    assert len(times) == 3 and all(b - a >= 0.3 for a, b in zip(times, times[1:]))


def test_a_long_local_queue_falls_back_instead_of_waiting(client_with, fakes):
    client = client_with(searxng_min_interval_s=60, searxng_timeout_s=1, cache_ttl_s=0)
    assert search(client, "one").json["engine"] == "searxng"
    data = search(client, "two").json
    assert data["engine"] == "duckduckgo"
    assert data["failed"][0]["kind"] == "rate_limited" and "queued locally" in data["failed"][0]["error"]
    assert len(fakes.requests_to("searxng")) == 1


# -- settings, engines list, schema ----------------------------------------------------------------

def test_engines_route_lists_order_mapping_and_problems(client_with, fakes):
    client = client_with(brave_api_key="", engines=["duckduckgo", "searxng", "brave"])
    data = client.get("/api/websearch/engines").json
    assert data["order"] == ["duckduckgo", "searxng"]
    assert data["sillytavern"] == {"google": "auto", "duckduckgo": "duckduckgo"}
    brave = next(e for e in data["engines"] if e["name"] == "brave")
    assert brave["usable"] is False and brave["enabled"] is True and "no API key" in brave["problem"]
    assert {e["plugin"] for e in data["engines"]} == {"websearch"}


def test_api_key_is_never_shown_and_env_key_works(client_with, fakes, monkeypatch):
    client = client_with()
    values = client.get("/api/modules/websearch/schema").json["values"]
    assert values["brave_api_key"] == "**********" and BRAVE_KEY not in str(values)
    monkeypatch.setenv("GREENROOM_BRAVE_API_KEY", BRAVE_KEY)
    assert search(client_with(brave_api_key=""), engine="brave").json["engine"] == "brave"


def test_live_settings_change_engines_and_reject_unknown_names(client_with, fakes):
    client = client_with()
    assert search(client).json["engine"] == "searxng"
    changed = client.post("/api/modules/websearch/settings", json={"engines": ["brave", "searxng"]})
    assert changed.status_code == 200, changed.json
    assert search(client, "fresh").json["engine"] == "brave"
    bad = client.post("/api/modules/websearch/settings", json={"engines": ["brave", "bing"]})
    assert bad.status_code == 422 and "engines: unknown engine 'bing'" in bad.json["error"]
    bad = client.post("/api/modules/websearch/settings", json={"sillytavern_google": "yahoo"})
    assert bad.status_code == 422 and "sillytavern_google: unknown engine 'yahoo'" in bad.json["error"]
    bad = client.post("/api/modules/websearch/settings", json={"engine_options": {"searxng": {"timeout_s": -1}}})
    assert bad.status_code == 422 and "allow_remote_settings" in bad.json["error"]  # may hold URLs and keys
    assert search(client, "fresh2").json["engine"] == "brave"  # the rejected changes did not apply


def test_module_fails_to_load_without_a_usable_engine(make_config):
    config = make_config(enable=["websearch"], modules={"websearch": {"engines": ["searxng", "brave"]}})
    app = create_app(config, plugins=[("websearch", websearch_plugin)], discover=False)
    rec = host_of(app).records["websearch"]
    assert rec.state == "failed"
    assert "no usable search engine" in rec.error and "set searxng_url" in rec.error
    assert app.test_client().post("/api/websearch", json={"query": "x"}).status_code == 503


def test_openapi_documents_the_routes(client_with):
    from openapi_spec_validator import validate
    doc = client_with().get("/openapi.json").json
    validate(doc)
    st = doc["paths"]["/api/websearch"]["post"]
    assert {"200", "400", "502", "504"} <= set(st["responses"])
    assert "requestBody" in st and "requestBody" in doc["paths"]["/api/websearch/results"]["post"]
    assert "get" in doc["paths"]["/api/websearch/engines"]


# -- engines from other plugins --------------------------------------------------------------------

class ReverseSettings(EngineSettings):
    prefix: str = Field("rev", description="Put before every title.")
    crash: bool = Field(False, description="Raise a bug instead of answering.")


class ReverseEngine(Engine):
    """A throw-away third-party engine: its results are the query reversed."""

    name = "reverse"
    description = "Reverses the query (test engine)."
    Settings = ReverseSettings

    def search(self, query: Query) -> list[Hit]:
        if self.settings.crash:
            raise RuntimeError(f"bug in a plugin while searching {query.text}")
        title = html_to_text(f"{self.settings.prefix} <i>{query.text[::-1]}</i>")  # engines return plain text
        return [Hit(title=title, url="https://reverse.example/1",
                    snippet=query.text[::-1] + "\r\nend", engine=self.name),
                Hit(title="unsafe", url="javascript:alert(1)", snippet="x", engine=self.name),
                Hit(title="dup", url="https://reverse.example/1", snippet="y", engine=self.name)]


def test_a_plugin_engine_is_used_like_a_builtin(client_with, fakes):
    client = client_with(plugins=[("reverse-plugin", plugin(register_websearch_engines=[ReverseEngine]))],
                         engines=["reverse", "searxng"], engine_options={"reverse": {"prefix": "R:"}})
    data = search(client, "abc def").json
    assert data["engine"] == "reverse"
    assert data["results"] == [{"title": "R: fed cba", "url": "https://reverse.example/1",
                                "snippet": "fed cba end", "engine": "reverse"}]
    st = client.post("/api/websearch", json={"query": "abc", "engine": "reverse"}).json
    assert st == {"results": "cba end", "links": ["https://reverse.example/1"]}
    listed = {e["name"]: e for e in client.get("/api/websearch/engines").json["engines"]}
    assert listed["reverse"]["plugin"] == "reverse-plugin" and listed["reverse"]["usable"] is True


def test_a_crashing_plugin_engine_is_one_failed_engine(client_with, fakes, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_with(plugins=[("reverse-plugin", plugin(register_websearch_engines=[ReverseEngine]))],
                         engines=["reverse", "searxng"], engine_options={"reverse": {"crash": True}})
    data = search(client, "secret words").json
    assert data["engine"] == "searxng"
    assert data["failed"] == [{"engine": "reverse", "kind": "error", "error": "engine crashed (RuntimeError)"}]
    assert "engine reverse crashed (RuntimeError)" in caplog.text and "secret" not in caplog.text


def test_engine_options_override_builtin_flat_keys(client_with, fakes):
    fakes.set("searxng", "slow")
    client = client_with(searxng_timeout_s=30, engine_options={"searxng": {"timeout_s": 0.3}})
    failed, = search(client).json["failed"]
    assert failed["kind"] == "timeout" and "within 0.3 s" in failed["error"]


def test_bad_engine_plugins_are_skipped(client_with, fakes, caplog):
    class NotAnEngine:
        name = "nope"

    class Clash(ReverseEngine):
        name = "searxng"

    client = client_with(plugins=[("bad-plugin", plugin(register_websearch_engines=[NotAnEngine])),
                                  ("clash-plugin", plugin(register_websearch_engines=[Clash]))])
    names = [e["name"] for e in client.get("/api/websearch/engines").json["engines"]]
    assert names == ["searxng", "duckduckgo", "brave"]
    assert search(client, engine="searxng").json["engine"] == "searxng"
    plugins = {p["name"]: p for p in client.get("/api/plugins").json["plugins"]}
    assert "not a Engine subclass" in plugins["bad-plugin"]["error"]
    assert "already provided by plugin websearch" in caplog.text


def test_options_of_an_unknown_engine_are_a_load_error(make_config):
    config = make_config(enable=["websearch"], modules={"websearch": {"engine_options": {"bingo": {"a": 1}}}})
    app = create_app(config, plugins=[("websearch", websearch_plugin)], discover=False)
    error = host_of(app).records["websearch"].error
    assert "engine_options: unknown engine 'bingo'" in error
