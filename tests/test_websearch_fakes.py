"""Local stand-ins for the real engines, on 127.0.0.1: SearXNG's JSON API, DuckDuckGo's HTML endpoint
and the Brave Search API, each switchable to slow, dripping, failing, malformed, rate-limited,
CAPTCHA, oversized or connection-dropping answers. Used by tests/test_websearch*.py and
bench/websearch.py; the tests at the bottom check that the fakes answer like the real shapes."""
from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests

BRAVE_KEY = "test-brave-key"
PATHS = {"searxng": "/searxng/search", "duckduckgo": "/ddg/html/", "brave": "/brave/res/v1/web/search"}
MODES = ("ok", "empty", "slow", "drip", "error", "malformed", "ratelimit", "captcha", "forbidden", "huge", "close")


@dataclass
class Seen:
    """One request a fake engine received."""

    engine: str
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


def fake_results(engine: str, query: str, count: int = 3) -> list[dict[str, str]]:
    """The results every fake engine gives for ``query``: HTML highlights, an entity and a line break
    in each snippet, so that cleaning is visible."""
    return [{"title": f"{engine} <b>result</b> {i}",
             "url": f"https://example.org/{engine}/{i}?q={quote(query)}",
             "snippet": f"Snippet {i} about <b>{html.escape(query)}</b> &amp; more\nfrom {engine}"}
            for i in range(1, count + 1)]


def plain_text(fragment: str) -> str:
    """What SearXNG's JSON API gives for an HTML fragment: plain text, tags gone, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", "", fragment))


def searxng_body(query: str, results: list[dict[str, str]]) -> bytes:
    return json.dumps({"query": query, "number_of_results": len(results), "answers": [], "infoboxes": [],
                       "suggestions": [], "unresponsive_engines": [],
                       "results": [{"title": plain_text(r["title"]), "url": r["url"],
                                    "content": plain_text(r["snippet"]),
                                    "engine": "google", "engines": ["google", "bing"], "score": 1.0,
                                    "category": "general"} for r in results]}).encode()


def brave_body(query: str, results: list[dict[str, str]]) -> bytes:
    doc: dict[str, Any] = {"type": "search", "query": {"original": query}, "mixed": {"type": "mixed", "main": []}}
    if results:
        doc["web"] = {"type": "search", "results": [
            {"title": r["title"], "url": r["url"], "description": r["snippet"], "is_source_local": False,
             "profile": {"name": "Example"}, "language": "en", "type": "search_result"} for r in results]}
    return json.dumps(doc).encode()


def ddg_body(results: list[dict[str, str]]) -> bytes:
    """A page shaped like html.duckduckgo.com/html/: an ad, then organic results behind /l/?uddg= links."""
    blocks = ['<div class="result results_links results_links_deep result--ad result--ad--small">'
              '<div class="links_main links_deep result__body"><h2 class="result__title">'
              '<a rel="nofollow" class="result__a" href="https://duckduckgo.com/y.js?ad_domain=ads.example">'
              'An advert</a></h2><a class="result__snippet" href="https://duckduckgo.com/y.js?x=1">Buy now</a>'
              '</div></div>']
    for r in results:
        link = "//duckduckgo.com/l/?uddg=" + quote(r["url"], safe="") + "&amp;rut=abc123"
        blocks.append(
            '<div class="result results_links results_links_deep web-result ">'
            '<div class="links_main links_deep result__body"><h2 class="result__title">'
            f'<a rel="nofollow" class="result__a" href="{link}">{r["title"]}</a></h2>'
            '<div class="result__extras"><div class="result__extras__url">'
            f'<a class="result__url" href="{link}">example.org</a></div></div>'
            f'<a class="result__snippet" href="{link}">{r["snippet"]}</a>'
            '<div class="clear"></div></div></div>')
    if not results:
        blocks.append('<div class="result results_links results_links_deep result--no-result">'
                      '<div class="no-results">No  results.</div></div>')
    return ('<!DOCTYPE html><html><head><title>DuckDuckGo</title><style>.x{}</style></head><body>'
            '<div id="links" class="results">' + "".join(blocks) +
            '<div class="nav-link"><form action="/html/" method="post"><input type="submit" value="Next">'
            '</form></div></div></body></html>').encode()


CAPTCHA_PAGE = (b'<html><body><div class="anomaly-modal__mask"><div class="anomaly-modal__modal">'
                b'<form id="challenge-form" class="challenge-form" action="//duckduckgo.com/anomaly.js">'
                b'Unfortunately, bots use DuckDuckGo too.</form></div></div></body></html>')
MALFORMED = {"searxng": b'{"results": [', "brave": b"[1, 2, 3]",
             "duckduckgo": b"<html><body><p>Welcome to nginx!</p></body></html>"}


class FakeEngines:
    """One threaded HTTP server answering like all three engines; ``set`` picks each one's behaviour."""

    def __init__(self, slow_s: float = 8.0) -> None:
        self.slow_s = slow_s
        self.modes: dict[str, str] = {}
        self.delay_s: dict[str, float] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.reset()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # clients that hang up are expected here
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, engine: str) -> str:
        """The URL to put in the module's settings (SearXNG: the instance's base URL)."""
        return self.base + ("/searxng" if engine == "searxng" else PATHS[engine])

    def settings(self) -> dict[str, Any]:
        """Module settings pointing every engine here, without pacing, with short timeouts."""
        return {"searxng_url": self.url("searxng"), "duckduckgo_url": self.url("duckduckgo"),
                "brave_url": self.url("brave"), "brave_api_key": BRAVE_KEY,
                **{f"{e}_{k}": v for e in PATHS for k, v in (("min_interval_s", 0), ("timeout_s", 1.5))}}

    def set(self, engine: str, mode: str, delay_s: float = 0.0) -> None:
        assert mode in MODES, mode
        self.modes[engine], self.delay_s[engine] = mode, delay_s

    def reset(self) -> None:
        with self._lock:
            self.modes = {e: "ok" for e in PATHS}
            self.delay_s = {e: 0.0 for e in PATHS}
            self.seen = []

    def requests_to(self, engine: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.engine == engine]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fakes = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms stalls

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                split = urlsplit(self.path)
                engine = next((e for e, p in PATHS.items() if split.path == p), None)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode()) if length else {}
                params = {k: v[0] for k, v in {**parse_qs(split.query), **form}.items()}
                if engine is None:
                    return self._send(404, b"not found", "text/plain")
                fakes._record(Seen(engine, self.command, split.path, params, dict(self.headers)))
                if fakes.delay_s[engine]:
                    time.sleep(fakes.delay_s[engine])
                fakes._respond(self, engine, fakes.modes[engine], params)

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _respond(self, h: Any, engine: str, mode: str, params: dict[str, str]) -> None:
        """Answer one request the way ``mode`` says (the request is already recorded)."""
        query = params.get("q", "")
        ctype = "text/html; charset=utf-8" if engine == "duckduckgo" else "application/json"
        if mode == "close":
            h.close_connection = True
            h.connection.close()
            return
        if mode == "slow":
            time.sleep(self.slow_s)
        if engine == "brave" and params and h.headers.get("X-Subscription-Token") != BRAVE_KEY:
            return h._send(422, b'{"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID", '
                                b'"status": 422}}', ctype)
        if engine == "searxng" and params.get("format") != "json":
            return h._send(400, b"format=json expected", "text/plain")
        if mode == "error":
            return h._send(500, b"<h1>Internal Server Error</h1>", "text/html")
        if mode == "ratelimit":
            return h._send(429, b"Too Many Requests", "text/plain", {"Retry-After": "30"})
        if mode == "forbidden":
            return h._send(403 if engine != "brave" else 401, b"Forbidden", "text/plain")
        if mode == "malformed":
            return h._send(200, MALFORMED[engine], ctype)
        if mode == "captcha":
            return h._send(200, CAPTCHA_PAGE, ctype)
        if mode == "huge":
            return h._send(200, b" " * (5 * 2**20) + b"{}", ctype)
        results = [] if mode == "empty" else fake_results(engine, query)
        body = {"searxng": lambda: searxng_body(query, results), "brave": lambda: brave_body(query, results),
                "duckduckgo": lambda: ddg_body(results)}[engine]()
        if mode == "drip":
            return self._drip(h, body, ctype)
        h._send(200, body, ctype)

    def _drip(self, h: Any, body: bytes, ctype: str) -> None:
        """Headers at once, then the body a few bytes at a time for ``slow_s`` seconds."""
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        step = max(1, len(body) // max(int(self.slow_s / 0.05), 1))
        try:
            for i in range(0, len(body), step):
                h.wfile.write(body[i:i + step])
                h.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass


# -- the fakes answer like the real shapes ---------------------------------------------------------

def test_fakes_answer_each_engine_shape():
    fakes = FakeEngines()
    try:
        sx = requests.post(fakes.url("searxng") + "/search", data={"q": "cats", "format": "json"}, timeout=5).json()
        assert sx["results"][0]["content"].startswith("Snippet 1 about cats & more")  # plain text, as SearXNG's
        br = requests.get(fakes.url("brave"), params={"q": "cats"}, headers={"X-Subscription-Token": BRAVE_KEY},
                          timeout=5).json()
        assert br["web"]["results"][2]["url"] == "https://example.org/brave/3?q=cats"
        assert requests.get(fakes.url("brave"), params={"q": "cats"}, timeout=5).status_code == 422
        page = requests.post(fakes.url("duckduckgo"), data={"q": "cats"}, timeout=5).text
        assert "result__snippet" in page and "uddg=https%3A%2F%2Fexample.org%2Fduckduckgo%2F1" in page
        fakes.set("duckduckgo", "ratelimit")
        answer = requests.post(fakes.url("duckduckgo"), data={"q": "cats"}, timeout=5)
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "30"
        assert [s.engine for s in fakes.seen] == ["searxng", "brave", "brave", "duckduckgo", "duckduckgo"]
    finally:
        fakes.close()
