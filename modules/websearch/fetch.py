"""HTTP for engines: one requests session per engine, a total deadline per answer, a size cap,
no cookies, and error messages that never carry the URL (a GET URL holds the query)."""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .errors import EngineError, EngineMalformed, EngineTimeout

MAX_ANSWER_BYTES = 4 * 2**20
CHUNK = 64 * 1024
_QUERY_STRING = re.compile(r"\?[^\s\"']*")


@dataclass
class Fetched:
    """An engine's answer, fully read."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    encoding: str | None

    def text(self) -> str:
        return self.body.decode(self.encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode(self.encoding or "utf-8", errors="replace"))
        except ValueError:
            raise EngineMalformed(f"answer is not JSON (HTTP {self.status}, {len(self.body)} bytes)") from None


SECRET_HEADERS = ("X-Subscription-Token", "X-Api-Key", "Api-Key")
"""Engines' key headers: like ``Authorization``, never sent on to another host by a redirect."""


class _Session(requests.Session):
    """requests drops ``Authorization`` when a redirect leaves the host; this drops engines' key headers too."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in SECRET_HEADERS:
                prepared_request.headers.pop(name, None)


class HttpClient:
    """Sends one engine's requests within ``timeout_s`` in total (connect + wait + body)."""

    def __init__(self, user_agent: str, timeout_s: float, max_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.session = _Session()
        self.session.headers["User-Agent"] = user_agent
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.session.max_redirects = 5
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                data: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Fetched:
        """Send and read the whole answer; raise EngineTimeout/EngineError with URL-free messages."""
        deadline = time.monotonic() + self.timeout_s
        where = urlsplit(url).netloc or "the engine"
        try:
            response = self.session.request(method, url, params=params, data=data, headers=headers,
                                            timeout=(self.timeout_s, self.timeout_s), stream=True)
        except requests.Timeout:
            raise EngineTimeout(f"no answer from {where} within {self.timeout_s:g} s") from None
        except requests.exceptions.SSLError:
            raise EngineError(f"TLS handshake with {where} failed", "connection") from None
        except requests.ConnectionError:
            raise EngineError(f"could not connect to {where}", "connection") from None
        except requests.RequestException as exc:
            raise EngineError(f"request to {where} failed ({type(exc).__name__})", "connection") from None
        with response:
            body = read_body(response.raw, deadline, self.max_bytes, where, self.timeout_s)
            return Fetched(response.status_code, response.headers, body, response.encoding)

    def close(self) -> None:
        self.session.close()


def read_body(raw: Any, deadline: float, max_bytes: int, where: str, timeout_s: float) -> bytes:
    """Read a urllib3 response body chunk by chunk (decompressed), so that a server dripping bytes cannot
    outlast ``deadline`` (a ``time.monotonic()`` value) and a body cannot grow past ``max_bytes``.
    Raises EngineTimeout, or EngineError of kind ``malformed`` (too large) or ``connection``."""
    parts: list[bytes] = []
    size = 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineTimeout(f"answer from {where} not complete within {timeout_s:g} s")
            _set_socket_timeout(raw, remaining)
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise EngineError(f"answer from {where} larger than {max_bytes} bytes", "malformed")
            parts.append(chunk)
    except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
        raise EngineTimeout(f"answer from {where} not complete within {timeout_s:g} s") from None
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise EngineError(f"reading the answer from {where} failed ({type(exc).__name__})", "connection") from None
    return b"".join(parts)


def _set_socket_timeout(raw: Any, seconds: float) -> None:
    """Shorten the socket's read timeout to what is left of the deadline (best effort)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        try:
            sock.settimeout(max(seconds, 0.001))
        except OSError:
            pass


class RedactQueryStrings(logging.Filter):
    """urllib3 logs request URLs at DEBUG; a GET URL holds the search query, which must not be logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_QUERY_STRING.sub("?<redacted>", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _QUERY_STRING.sub("?<redacted>", record.msg)
        return True


def install_log_redaction() -> None:
    """Add the filter to urllib3's connection-pool logger once per process."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, RedactQueryStrings) for f in logger.filters):
        logger.addFilter(RedactQueryStrings())
