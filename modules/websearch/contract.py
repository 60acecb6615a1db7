"""The search service of the websearch module, as other modules see it. Import this file, never the internals.

    from greenroom_modules.websearch.contract import WebSearching

    search = self.context.service(WebSearching)      # None while websearch is not loaded
    for found in search.find("cats", engine="duckduckgo", limit=5):
        found.title, found.url, found.text, found.engine

Searches go through the module's engines with its fallback order, cache, timeouts, rate limits and
query rules; bad input raises :class:`greenroom.errors.BadRequest` naming the field (``engine``, ``query``).

    from greenroom_modules.websearch.contract import WebFetching

    page = self.context.service(WebFetching).fetch_page("https://example.org/", format="markdown")
    page.url, page.title, page.text

Fetching refuses loopback, private and link-local addresses (also behind redirects) unless configured,
and answers only web pages and plain text, within a total timeout and a size limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from greenroom.errors import Error

__all__ = ["FetchFailed", "FetchRefused", "Found", "Page", "PageFormat", "WebFetching", "WebSearching"]


@dataclass(frozen=True)
class Found:
    """One result, cleaned to plain text."""

    title: str
    url: str
    text: str
    engine: str


@runtime_checkable
class WebSearching(Protocol):
    """Web search. Offered by the websearch module while it is loaded."""

    def find(self, query: str, engine: str | None = None, limit: int | None = None) -> list[Found]:
        """Results for ``query`` from ``engine`` (None: the configured order), at most ``limit``
        (None: the module's max_results)."""
        ...


# -- fetching one page -------------------------------------------------------------------------------

PageFormat = Literal["markdown", "text"]


@dataclass(frozen=True)
class Page:
    """One fetched page as readable text."""

    url: str
    """Where the text came from, after redirects."""
    title: str | None
    text: str
    """The page's main text: Markdown (headings, list items) or plain text, paragraphs separated by a
    blank line, cut to the module's webfetch_max_chars."""
    media_type: str
    """The served type: text/html, application/xhtml+xml or text/plain."""
    truncated: bool


class FetchRefused(Error):
    """403: the URL is not fetched by policy. ``reason``: ``scheme``, ``credentials``, ``address`` (a
    loopback, private or link-local host, also one reached by a redirect), ``content_type`` or ``redirects``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(403, message, reason=reason)
        self.reason = reason


class FetchFailed(Error):
    """502 (504 for ``timeout``): the page could not be read. ``reason``: ``dns``, ``connection``,
    ``http`` (an error status), ``too_large`` or ``timeout``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(504 if reason == "timeout" else 502, message, reason=reason)
        self.reason = reason


@runtime_checkable
class WebFetching(Protocol):
    """Fetches one web page for a reader (an LLM tool), under the module's SSRF rules, timeout and size
    limit. Offered by the websearch module while it is loaded."""

    def fetch_page(self, url: str, format: PageFormat = "markdown") -> Page:
        """The page at ``url`` as text; raises :class:`FetchRefused`, :class:`FetchFailed` or
        :class:`greenroom.errors.BadRequest` (a URL that is not a URL, naming ``url``)."""
        ...
