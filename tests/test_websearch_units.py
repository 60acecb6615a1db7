"""websearch pieces on their own: snippet cleaning, the DuckDuckGo page parser, the TTL cache,
the pacing limiter, Retry-After parsing, link safety and the HTTP deadline."""
from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from greenroom_modules.websearch.cache import TTLCache
from greenroom_modules.websearch.duckduckgo import DuckDuckGoEngine, DuckDuckGoSettings, result_url
from greenroom_modules.websearch.engines import EngineMalformed, EngineRateLimited, EngineTimeout, Hit, retry_after_s
from greenroom_modules.websearch.fetch import HttpClient, RedactQueryStrings
from greenroom_modules.websearch.ratelimit import RateLimiter
from greenroom_modules.websearch.search import finalise, safe_url
from greenroom_modules.websearch.text import clean_snippet, html_to_text, one_line, truncate

from .test_websearch_fakes import CAPTCHA_PAGE, ddg_body, fake_results


# -- text ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fragment, text", [
    ("plain text", "plain text"),
    ("<b>bold</b>face and <strong>strong</strong>", "boldface and strong"),
    ("Tom &amp; Jerry &lt;3 &#8212; &quot;cartoon&quot; &nbsp;x", 'Tom & Jerry <3 \u2014 "cartoon" x'),
    ("line one<br>line two\nline three\r\nfour\u2028five", "line one line two line three four five"),
    ("<p>para</p><p>graph</p>", "para graph"),
    ("before<script>alert('x')</script><style>.a{}</style>after", "before after"),
    ("zero\u200bwidth \x00nul\x07bell \u202etrick", "zerowidth nulbell trick"),
    ("emoji \U0001f469\u200d\U0001f4bb kept", "emoji \U0001f469\u200d\U0001f4bb kept"),
    ("a < b and c > d", "a < b and c > d"),
    ("   ", ""),
])
def test_html_to_text_gives_one_clean_line(fragment, text):
    assert html_to_text(fragment) == text


def test_truncate_cuts_at_a_word_with_an_ellipsis():
    assert truncate("short", 10) == "short"
    assert truncate("the quick brown fox jumps", 16) == "the quick brown\u2026"
    assert truncate("x" * 30, 10) == "x" * 9 + "\u2026"
    assert len(clean_snippet("<b>word</b> " * 200, 100)) <= 100
    assert one_line(" a\n\n b ") == "a b"


# -- DuckDuckGo page -------------------------------------------------------------------------------

def ddg() -> DuckDuckGoEngine:
    return DuckDuckGoEngine(DuckDuckGoSettings(), HttpClient("test", 1))


def test_ddg_parser_reads_results_and_skips_ads():
    hits = ddg().parse(ddg_body(fake_results("duckduckgo", "cats", 2)).decode())
    assert [(h.title, h.url) for h in hits] == [("duckduckgo result 1", "https://example.org/duckduckgo/1?q=cats"),
                                                ("duckduckgo result 2", "https://example.org/duckduckgo/2?q=cats")]
    assert hits[0].snippet == "Snippet 1 about cats & more from duckduckgo"


def test_ddg_parser_tells_empty_from_captcha_from_unknown_pages():
    assert ddg().parse(ddg_body([]).decode()) == []
    with pytest.raises(EngineRateLimited, match="CAPTCHA"):
        ddg().parse(CAPTCHA_PAGE.decode())
    with pytest.raises(EngineMalformed, match="no results list"):
        ddg().parse("<html><body>Moved</body></html>")
    with pytest.raises(EngineMalformed, match="without links"):
        ddg().parse('<div id="links"><div class="result"><a class="result__a">t</a></div></div>')
    truncated = ddg_body(fake_results("duckduckgo", "cats", 3)).decode()[:900]
    assert len(ddg().parse(truncated)) >= 1  # a cut-off page still gives the results it holds


@pytest.mark.parametrize("href, url", [
    ("//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx%3Fy%3D1&rut=z", "https://a.example/x?y=1"),
    ("https://b.example/direct", "https://b.example/direct"),
    ("https://duckduckgo.com/y.js?ad_domain=ads", ""),
    ("/html/?q=next", ""),
])
def test_ddg_result_links(href, url):
    assert result_url(href) == url


# -- links, cache, pacing, Retry-After -------------------------------------------------------------

@pytest.mark.parametrize("url, ok", [
    ("https://a.example/x", True), ("http://a.example", True), ("javascript:alert(1)", False),
    ("data:text/html,x", False), ("/relative", False), ("https://", False), ("https://a b.example", False),
    ("ftp://a.example/f", False), ("https://a.example/" + "x" * 3000, False),
])
def test_only_absolute_http_links_are_kept(url, ok):
    assert (safe_url(url) is not None) == ok


def test_finalise_dedupes_and_flattens():
    hits = [Hit("t\n1", "https://a.example", "s\r\n1", "e"), Hit("t2", "https://a.example", "s2", "e"),
            Hit("t3", "javascript:x", "s3", "e"), Hit("t4", "https://b.example", "x" * 900, "e")]
    out = finalise(hits, 100)
    assert [(h.title, h.url) for h in out] == [("t 1", "https://a.example"), ("t4", "https://b.example")]
    assert out[0].snippet == "s 1" and len(out[1].snippet) == 100


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_cache_expires_evicts_least_recent_and_can_be_off():
    clock = Clock()
    cache: TTLCache[str] = TTLCache(10, 2, clock=clock)
    cache.put("a", "A")
    cache.put("b", "B")
    assert cache.get("a") == "A"
    cache.put("c", "C")  # evicts b, the least recently used
    assert (cache.get("b"), cache.get("a"), cache.get("c")) == (None, "A", "C")
    clock.now += 10.5
    assert cache.get("a") is None and cache.stats()["entries"] == 1
    off: TTLCache[str] = TTLCache(0, 10)
    off.put("a", "A")
    assert off.get("a") is None and not off.enabled


def test_limiter_spaces_requests_and_refuses_long_queues():
    clock = Clock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert limiter.wait_turn(2.0, max_wait_s=5) == 0
    assert limiter.wait_turn(2.0, max_wait_s=5) == 2.0
    assert clock.slept == [2.0]
    limiter2 = RateLimiter(clock=clock, sleep=lambda s: None)  # queue without time passing
    limiter2.wait_turn(3.0, 5)
    limiter2.wait_turn(3.0, 5)
    with pytest.raises(EngineRateLimited, match="queued locally"):
        limiter2.wait_turn(3.0, 5)
    limiter.cool_down(30)
    with pytest.raises(EngineRateLimited, match="cooling down for 30 more s") as err:
        limiter.wait_turn(0, 5)
    assert err.value.retry_after == pytest.approx(30)
    clock.now += 31
    assert limiter.cooling_for() == 0 and limiter.wait_turn(0, 5) == 0


@pytest.mark.parametrize("headers, seconds", [
    ({"Retry-After": "120"}, 120), ({"Retry-After": "0"}, 1), ({"X-RateLimit-Reset": "3, 86000"}, 3),
    ({"Retry-After": "soon"}, None), ({}, None), ({"Retry-After": "999999"}, 86400),
])
def test_retry_after(headers, seconds):
    assert retry_after_s(headers) == seconds


def test_redaction_filter_removes_query_strings():
    record = logging.LogRecord("urllib3.connectionpool", logging.DEBUG, "", 0, '%s "%s %s"', (
        "http://h:1", "GET", "/search?q=secret+words&count=20"), None)
    RedactQueryStrings().filter(record)
    assert record.getMessage() == 'http://h:1 "GET /search?<redacted>"'


# -- the HTTP deadline -----------------------------------------------------------------------------

def test_http_deadline_covers_a_server_that_never_finishes():
    """Headers promptly, then one byte every 50 ms forever: the client still stops at its deadline."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            while not stop.is_set():
                conn.sendall(b"x")
                time.sleep(0.05)
        except OSError:
            pass
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = HttpClient("test", timeout_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(EngineTimeout, match="not complete within 0.5 s"):
            client.request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/search?q=x")
        assert time.monotonic() - started < 30  # far below the 5000 s the body would take
    finally:
        stop.set()
        client.close()
        listener.close()


def test_a_redirect_to_another_host_does_not_carry_the_engines_key():
    """An engine endpoint answering 302 to another host (here: "localhost" instead of "127.0.0.1") must not
    get the Brave key sent there; a redirect on the same host keeps it."""
    seen: dict[str, str | None] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            port = self.server.server_address[1]
            targets = {"/away": f"http://localhost:{port}/landed-away", "/near": f"http://127.0.0.1:{port}/landed-near"}
            if self.path in targets:
                self.send_response(302)
                self.send_header("Location", targets[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            seen[self.path] = self.headers.get("X-Subscription-Token")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = HttpClient("test", timeout_s=10)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for path in ("/away", "/near"):
            assert client.request("GET", base + path, headers={"X-Subscription-Token": "secret"}).status == 200
        assert seen == {"/landed-away": None, "/landed-near": "secret"}
    finally:
        client.close()
        server.shutdown()
        server.server_close()
