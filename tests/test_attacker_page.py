"""The attacker's web page, in a real headless Chromium, against a real server without ``--secure`` (issue 20).

A page the user happens to visit tries what the hostile campaign did with curl: change settings with a
``text/plain`` POST (no preflight) and with a form, send JSON that needs a preflight, read answers, point
websearch at an internal URL, fill every stream slot with ``<img>`` feeds, and reach the server through a
rebound DNS name. Chromium resolves the test's names with ``--host-resolver-rules``, so each page has a
genuinely different origin although every name leads to 127.0.0.1:

- ``http://attacker.test:<pages>``: the attacker's own site (a small HTTP server in this file);
- ``http://localhost:<pages>``: the same page from an origin ``cors_origins`` allows by default, the
  positive control that shows each attack would work if the server let it;
- ``http://rebind.test:<greenroom>``: DNS rebinding. The attacker's site serves the page (Playwright
  sends that one request there, as the name's first DNS answer would), and then the name leads to
  Greenroom's own port, so the page's same-origin requests reach Greenroom.

Every page comes from a loopback address, so Chromium's Private Network Access rules (which stop a
page from a public address reaching 127.0.0.1, and which other browsers lack) stand aside: what the
tests see is the server's own rules. Settings are checked from Python after each attack.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from .server_process import ServerProcess
from .test_reliability_support import talkinghead_settings, wait_until, write_config
from .test_webui import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.slow

MAX_STREAMS = 4  # so one client address may hold 3 (max_streams_per_client 0 = max_streams - 1)
SEARXNG_URL = "http://127.0.0.1:9/searxng"  # never fetched: no test searches
MAX_RESULTS = 10

ATTACKER_PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>a page the user happens to visit</title>
<iframe name="sink"></iframe>
<script>
window.attacks = {
  // A "simple" request: no preflight, the answer is opaque to the page, but the server acts on it.
  async noCors(url, body) {
    await fetch(url, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body});
    return "sent";
  },
  // A form whose text/plain body 'name=value' reads as JSON: name '{"x": "' and value '", "x": 2}' give
  // {"x": "=", "x": 2}, and JSON parsers keep the last of two equal keys.
  form(url, name, value) {
    const form = Object.assign(document.createElement("form"),
                               {method: "post", action: url, enctype: "text/plain", target: "sink"});
    form.append(Object.assign(document.createElement("input"), {type: "hidden", name, value}));
    document.body.append(form);
    form.submit();
  },
  // Anything the page wants to read, or JSON that needs a preflight: blocked unless CORS allows it.
  async read(url, options = {}) {
    try {
      const reply = await fetch(url, options);
      return {status: reply.status, body: await reply.json()};
    } catch (error) {
      return {blocked: String(error)};
    }
  },
  postJson(url, body) {
    return this.read(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  },
  feeds(url, count) {
    for (let i = 0; i < count; i++) {
      document.body.append(Object.assign(new Image(), {src: `${url}?n=${i}`}));
    }
  },
};
</script>
"""


class PageServer:
    """The attacker's site: every path answers ATTACKER_PAGE."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(ATTACKER_PAGE)))
                self.end_headers()
                self.wfile.write(ATTACKER_PAGE)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def greenroom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacker-page")
    config = write_config(folder / "plugins.toml", {"max_streams": MAX_STREAMS},
                          {"talkinghead": talkinghead_settings(folder),
                           "websearch": {"searxng_url": SEARXNG_URL, "max_results": MAX_RESULTS}})
    proc = ServerProcess(["--config", str(config), "--enable-modules=talkinghead,websearch"],
                         log_path=folder / "server.log")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pages():
    site = PageServer()
    yield site
    site.close()


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright
    rules = "MAP attacker.test 127.0.0.1, MAP rebind.test 127.0.0.1"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--host-resolver-rules={rules}"])
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, pages):
    """``open_page(host)`` -> a Playwright page showing ATTACKER_PAGE from http://<host>:<pages.port>/."""
    contexts = []

    def open_at(host: str):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.goto(f"http://{host}:{pages.port}/")
        assert page.evaluate("location.origin") == f"http://{host}:{pages.port}"
        return page

    yield open_at
    for context in contexts:
        context.close()


def websearch_values(greenroom) -> dict:
    return requests.get(greenroom.url + "/api/modules/websearch/schema", timeout=30).json()["values"]


def set_max_results(greenroom, value: int) -> None:
    reply = requests.post(settings_url(greenroom), json={"max_results": value}, timeout=30)
    assert reply.status_code == 200, reply.text


def streams_open(greenroom) -> int:
    return requests.get(greenroom.url + "/api/server/status", timeout=30).json()["streams_open"]


def settings_url(greenroom) -> str:
    return greenroom.url + "/api/modules/websearch/settings"


def no_cors_post(page, url: str, body: str) -> int:
    """The page POSTs ``body`` as text/plain without CORS; the status Chromium got. The answer is opaque to
    the page, and Chromium keeps no body of it: the form below shows the body."""
    with page.expect_response(lambda r: r.url == url and r.request.method == "POST", timeout=60_000) as info:
        page.evaluate("([url, body]) => attacks.noCors(url, body)", [url, body])
    return info.value.status


def form_answer(page, url: str, max_results: int) -> tuple[int, dict]:
    """Submit the attacker's form into the page's iframe; the status and the JSON shown there."""
    name, value = '{"max_results": "', f'", "max_results": {max_results}}}'  # see attacks.form
    with page.expect_response(lambda r: r.url == url and r.request.method == "POST", timeout=60_000) as info:
        page.evaluate("([url, name, value]) => attacks.form(url, name, value)", [url, name, value])
    return info.value.status, info.value.json()


def post_json(page, url: str, body: dict) -> dict:
    """The page POSTs JSON (a preflight first when cross-origin): {status, body} or {blocked: why}."""
    return page.evaluate("([url, body]) => attacks.postJson(url, body)", [url, body])


def get_json(page, url: str) -> dict:
    """The page GETs ``url`` and reads the JSON: {status, body}, or {blocked: why} when CORS forbids it."""
    return page.evaluate("url => attacks.read(url)", url)


# -- simple requests: text/plain fetch without CORS, and a form ----------------------------------------

def test_a_text_plain_post_from_another_site_is_refused(greenroom, open_page, pages):
    page = open_page("attacker.test")
    origin = f"http://attacker.test:{pages.port}"
    target = settings_url(greenroom)
    assert no_cors_post(page, target, '{"max_results": 2}') == 403
    status, body = form_answer(page, target, 2)
    assert status == 403 and origin in body["error"] and "cors_origins" in body["error"], body
    assert websearch_values(greenroom)["max_results"] == MAX_RESULTS


def test_the_same_text_plain_post_from_an_allowed_origin_changes_the_setting(greenroom, open_page):
    """The positive control: what the attacker sent works from localhost, so the refusal above is the rule."""
    page = open_page("localhost")
    target = settings_url(greenroom)
    try:
        assert no_cors_post(page, target, '{"max_results": 2}') == 200
        assert websearch_values(greenroom)["max_results"] == 2
        status, body = form_answer(page, target, 3)
        assert status == 200 and websearch_values(greenroom)["max_results"] == 3, body
    finally:
        set_max_results(greenroom, MAX_RESULTS)


# -- requests that need a preflight, and reading answers -----------------------------------------------

def test_json_and_reads_from_another_site_are_blocked_by_the_browser(greenroom, open_page):
    page = open_page("attacker.test")
    sent = post_json(page, settings_url(greenroom), {"max_results": 4})
    assert "blocked" in sent, sent  # the preflight got no Access-Control-Allow-Origin: the POST never left
    read = get_json(page, greenroom.url + "/api/modules/websearch/schema")
    assert "blocked" in read, read
    assert websearch_values(greenroom)["max_results"] == MAX_RESULTS


def test_json_and_reads_from_an_allowed_origin_work(greenroom, open_page):
    page = open_page("localhost")
    try:
        sent = post_json(page, settings_url(greenroom), {"max_results": 4})
        assert sent["status"] == 200, sent
        read = get_json(page, greenroom.url + "/api/modules/websearch/schema")
        assert read["status"] == 200 and read["body"]["values"]["max_results"] == 4, read
    finally:
        set_max_results(greenroom, MAX_RESULTS)


# -- settings that name URLs: load-time only unless allow_remote_settings ------------------------------

@pytest.mark.parametrize("change", [{"searxng_url": "http://127.0.0.1:22/"},
                                    {"brave_url": "http://attacker.test/steal"}])
def test_engine_urls_cannot_be_changed_from_any_page(greenroom, open_page, pages, change):
    attacker = open_page("attacker.test")
    assert no_cors_post(attacker, settings_url(greenroom), json.dumps(change)) == 403
    # Even a page the origin rule lets through (or a compromised local one) cannot move the engines.
    allowed = open_page("localhost")
    sent = post_json(allowed, settings_url(greenroom), change)
    assert sent["status"] == 422 and "allow_remote_settings" in sent["body"]["error"], sent
    values = websearch_values(greenroom)
    assert values["searxng_url"] == SEARXNG_URL and values["brave_url"] != change.get("brave_url")


# -- DNS rebinding --------------------------------------------------------------------------------------

def rebound_page(browser, greenroom, pages, host: str):
    """The attacker's page at http://<host>:<greenroom port>/attacker.html. Its own request goes to the
    attacker's site (``pages``), as the name's first DNS answer would send it; every later request of the
    page goes where the name resolves now, to Greenroom, as after a DNS rebinding."""
    context = browser.new_context()
    page = context.new_page()
    address = f"http://{host}:{greenroom.port}/attacker.html"
    page.route(address, lambda route: route.continue_(url=f"http://127.0.0.1:{pages.port}/attacker.html"))
    page.goto(address)
    assert page.evaluate("typeof attacks") == "object"
    return context, page


def test_a_rebound_name_is_refused_by_the_host_allow_list(browser, greenroom, pages):
    context, page = rebound_page(browser, greenroom, pages, "rebind.test")
    try:
        read = get_json(page, "/api/modules/websearch/schema")  # same origin: the page reads every answer
        assert read.get("status") == 403, read
        assert "rebind.test" in read["body"]["error"] and "allowed_hosts" in read["body"]["error"], read
        sent = post_json(page, "/api/modules/websearch/settings", {"max_results": 5})
        assert sent["status"] == 403 and "allowed_hosts" in sent["body"]["error"], sent
    finally:
        context.close()
    assert websearch_values(greenroom)["max_results"] == MAX_RESULTS


def test_the_same_page_under_localhost_reaches_the_server(browser, greenroom, pages):
    """The positive control: a same-origin page on a name the server answers to reads and writes."""
    context, page = rebound_page(browser, greenroom, pages, "localhost")
    try:
        read = get_json(page, "/api/modules/websearch/schema")
        assert read.get("status") == 200 and read["body"]["values"]["searxng_url"] == SEARXNG_URL, read
        sent = post_json(page, "/api/modules/websearch/settings", {"max_results": 5})
        assert sent["status"] == 200 and websearch_values(greenroom)["max_results"] == 5, sent
    finally:
        context.close()
        set_max_results(greenroom, MAX_RESULTS)


# -- the feed slots before the first load ---------------------------------------------------------------

def test_feeds_a_page_opens_and_leaves_free_their_slots(greenroom, open_page):
    """No character is loaded, so each feed waits for one. The page opens more feeds than max_streams."""
    feed = greenroom.url + "/api/talkinghead/result_feed"
    assert streams_open(greenroom) == 0
    page = open_page("attacker.test")
    page.evaluate("([url, count]) => attacks.feeds(url, count)", [feed, MAX_STREAMS + 2])
    # One client address holds at most max_streams - 1 slots: the page got 3, the other feeds 503.
    assert wait_until(lambda: streams_open(greenroom) == MAX_STREAMS - 1, timeout=60)
    held = requests.get(feed, timeout=30)  # Python is the same client address, 127.0.0.1, as the page
    assert held.status_code == 503 and "max_streams_per_client" in held.json()["error"], held.text
    page.goto("about:blank")  # the user leaves: Chromium drops the connections
    # Each waiting feed writes a keep-alive frame once a second, so the server notices and frees the slots.
    assert wait_until(lambda: streams_open(greenroom) == 0, timeout=30)
    with requests.get(feed, stream=True, timeout=30) as legitimate:
        assert legitimate.status_code == 200
        assert legitimate.raw.read(40).startswith(b"--frame\r\nContent-Type: image/png")
