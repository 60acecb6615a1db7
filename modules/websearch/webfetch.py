"""Fetch one web page and return its readable text (the WebFetching service, contract.py).

The URL comes from a client, often an LLM choosing it, so the fetch follows SSRF rules:

- only ``http`` and ``https``, and no ``user:password@`` in the URL;
- the host name is resolved once, every address it resolves to must be public (not loopback, private,
  link-local, shared, multicast, reserved or unspecified; IPv4-mapped IPv6 checked as IPv4), and the
  connection goes to that checked address, so a second DNS answer cannot swap in another one;
- redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and every hop is checked again;
- only web pages and plain text are read (``Content-Type``), within one total timeout and a size limit.

``webfetch_allow_private`` lifts the address rule for every host, ``webfetch_allowed_hosts`` for the hosts
named (as written in the URL). The engines' own URLs are configured by the operator and are not affected.
"""
from __future__ import annotations

import codecs
import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3

from greenroom.errors import BadRequest

from .contract import FetchFailed, FetchRefused, Page, PageFormat
from .errors import EngineError, EngineTimeout
from .fetch import read_body
from .text import ELLIPSIS, readable_page, readable_text

log = logging.getLogger("greenroom.websearch.webfetch")

MAX_REDIRECTS = 5
MAX_URL_CHARS = 8192
HTML_TYPES = {"text/html", "application/xhtml+xml"}
TEXT_TYPES = HTML_TYPES | {"text/plain"}
ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8"
_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([a-zA-Z0-9_-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class FetchRules:
    """The webfetch_* settings of the module."""

    user_agent: str
    timeout_s: float
    max_bytes: int
    max_chars: int
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Target:
    """A URL that passed the checks, and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    path: str


def fetch_page(url: str, fmt: PageFormat, rules: FetchRules) -> Page:
    """The page at ``url`` as text (see the module docstring for the rules)."""
    if not url.strip() or len(url) > MAX_URL_CHARS:
        raise BadRequest(f"url: give an http or https URL of at most {MAX_URL_CHARS} characters")
    deadline = time.monotonic() + rules.timeout_s
    current = url.strip()
    for _ in range(MAX_REDIRECTS + 1):
        target = checked(current, rules)
        response = _open(target, rules, deadline)
        try:
            location = response.headers.get("Location")
            if response.status in (301, 302, 303, 307, 308) and location:
                current = urljoin(target.url, location)
                continue
            return _page(target, response, fmt, rules, deadline)
        finally:
            response.release_conn()
            response.close()
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects", "redirects")


def checked(url: str, rules: FetchRules) -> Target:
    """``url`` parsed, its host resolved and every address checked; raises FetchRefused or FetchFailed."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise BadRequest(f"url: not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https URLs are fetched, not '{scheme or 'no scheme'}'", "scheme")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("URLs with a user name or password are not fetched", "credentials")
    host = (parts.hostname or "").lower()
    if not host:
        raise BadRequest("url: the URL names no host")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchFailed(f"the host name {host} could not be resolved", "dns") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not (rules.allow_private or host in rules.allowed_hosts):
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise FetchRefused(f"{host} resolves to a non-public address ({private[0]}); pages on this machine, "
                               f"the local network or link-local addresses are not fetched", "address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, scheme, host, port, addresses[0], path)


def is_public(address: str) -> bool:
    """Whether ``address`` is a globally reachable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _open(target: Target, rules: FetchRules, deadline: float) -> urllib3.BaseHTTPResponse:
    """GET ``target.path`` from the checked address; the Host header and TLS name stay the URL's host."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchFailed(f"the page was not read within {rules.timeout_s:g} s", "timeout")
    timeout = urllib3.Timeout(connect=remaining, read=remaining)
    if target.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1, server_hostname=target.host,
            assert_hostname=target.host, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False, maxsize=1)
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    headers = {"Host": host if target.port == default_port else f"{host}:{target.port}",
               "User-Agent": rules.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"}
    try:
        return pool.urlopen("GET", target.path, headers=headers, redirect=False, preload_content=False,
                            decode_content=True, assert_same_host=False)
    except (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError):
        raise FetchFailed(f"no answer from {target.host} within {rules.timeout_s:g} s", "timeout") from None
    except urllib3.exceptions.SSLError:
        raise FetchFailed(f"TLS handshake with {target.host} failed", "connection") from None
    except urllib3.exceptions.HTTPError as exc:
        raise FetchFailed(f"could not connect to {target.host} ({type(exc).__name__})", "connection") from None


def _page(target: Target, response: urllib3.BaseHTTPResponse, fmt: PageFormat, rules: FetchRules,
          deadline: float) -> Page:
    if response.status >= 400:
        raise FetchFailed(f"{target.host} answered HTTP {response.status}", "http")
    media_type, _, params = (response.headers.get("Content-Type") or "").partition(";")
    media_type = media_type.strip().lower()
    if media_type not in TEXT_TYPES:
        raise FetchRefused(f"not a web page or plain text (Content-Type '{media_type or 'none'}')", "content_type")
    try:
        body = read_body(response, deadline, rules.max_bytes, target.host, rules.timeout_s)
    except EngineTimeout:
        raise FetchFailed(f"the page was not read within {rules.timeout_s:g} s", "timeout") from None
    except EngineError as exc:
        raise FetchFailed(str(exc), "too_large" if exc.kind == "malformed" else "connection") from None
    decoded = body.decode(_charset(params, body, media_type), errors="replace")
    if media_type in HTML_TYPES:
        title, text = readable_page(decoded, markdown=fmt == "markdown")
    else:
        title, text = None, readable_text(decoded)
    truncated = len(text) > rules.max_chars
    if truncated:
        text = text[: rules.max_chars - 1].rstrip() + ELLIPSIS
    log.info("webfetch: %s (%s, %d bytes -> %d characters)", target.host, media_type, len(body), len(text))
    return Page(target.url, title, text, media_type, truncated)


def _charset(params: str, body: bytes, media_type: str) -> str:
    """The Content-Type's charset, else an HTML page's <meta charset>, else UTF-8 (when Python knows it)."""
    match = re.search(r"charset=[\"']?([\w-]+)", params, re.IGNORECASE)
    if match is None and media_type in HTML_TYPES:
        meta = _CHARSET.search(body[:4096])
        name = meta.group(1).decode("ascii") if meta else None
    else:
        name = match.group(1) if match else None
    try:
        return codecs.lookup(name).name if name else "utf-8"
    except LookupError:
        return "utf-8"
