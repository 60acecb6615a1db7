"""The search service of the websearch module, as other modules see it. Import this file, never the internals.

    from greenroom_modules.websearch.contract import WebSearching

    search = self.context.service(WebSearching)      # None while websearch is not loaded
    for found in search.find("cats", engine="duckduckgo", limit=5):
        found.title, found.url, found.text, found.engine

Searches go through the module's engines with its fallback order, cache, timeouts, rate limits and
query rules; bad input raises :class:`greenroom.errors.BadRequest` naming the field (``engine``, ``query``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Found", "WebSearching"]


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
