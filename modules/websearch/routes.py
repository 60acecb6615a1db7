"""HTTP routes: SillyTavern's exact ``POST /api/websearch``, the structured results, the engine list."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import jsonify
from pydantic import BaseModel, Field

from greenroom import ApiError
from greenroom.views import Routes

from .search import Searcher

if TYPE_CHECKING:
    from .module import WebSearch

MAX_RAW_QUERY = 100_000  # refused by the model before any work; max_query_chars is the real limit


class SearchBody(BaseModel):
    """SillyTavern's request: ``{"query", "engine"}``."""

    query: str = Field(max_length=MAX_RAW_QUERY,
                       description="What to search for; at most max_query_chars characters once whitespace is "
                                   "collapsed.")
    engine: str | None = Field(None, max_length=64,
                               description="'google' or 'duckduckgo' as SillyTavern sends them (mapped by the "
                                           "sillytavern_* settings), 'auto', or an installed engine's name. "
                                           "Default: 'auto'.")


class ResultsBody(SearchBody):
    """The structured search: SillyTavern's fields plus how many results to return."""

    max_results: int | None = Field(None, ge=1, le=50, description="Default: the max_results setting.")


class SillyTavernResults(BaseModel):
    """SillyTavern's shape: snippets joined by newlines (the client splits on '\\n'), and their links."""

    results: str
    links: list[str]


class ResultItem(BaseModel):
    title: str
    url: str
    snippet: str
    engine: str


class FailureItem(BaseModel):
    engine: str
    kind: str = Field(description="timeout, http, malformed, rate_limited, connection, config or error.")
    error: str


class StructuredResults(BaseModel):
    """Results with titles and links, which engine answered, and whether the cache did."""

    results: list[ResultItem]
    engine: str
    cached: bool
    failed: list[FailureItem] = Field(description="Engines tried before the one that answered, and why they failed.")


class SearchFailed(BaseModel):
    """Every engine tried failed (502), or every one timed out (504)."""

    error: str
    engine: str = Field(description="The first engine tried.")
    failures: list[FailureItem]


class EngineList(BaseModel):
    """Installed engines, the order they are tried in, and what SillyTavern's names map to."""

    engines: list[dict[str, Any]]
    order: list[str]
    sillytavern: dict[str, str]


ERRORS = {
    400: "Missing, empty or over-long query, or an unknown or unavailable engine; the message names the field.",
    502: SearchFailed, 504: SearchFailed,
}

routes = Routes()


def _searcher(module: "WebSearch") -> Searcher:
    current = module.searcher
    if current is None:
        raise ApiError(503, "websearch is not loaded")
    return current


@routes.api("/api/websearch", methods=["POST"], body=SearchBody, responses={200: SillyTavernResults, **ERRORS},
            summary="Search the web (SillyTavern's WebSearch extension)")
def websearch(module: "WebSearch", body: SearchBody):
    """``results`` is one string, the snippets joined by newlines; ``links`` holds their URLs."""
    current = _searcher(module)
    hits = current.search(body.engine, body.query).hits(current.settings.max_results)
    return jsonify({"results": "\n".join(h.snippet or h.title for h in hits), "links": [h.url for h in hits]})


@routes.api("/api/websearch/results", methods=["POST"], body=ResultsBody,
            responses={200: StructuredResults, **ERRORS}, summary="Search the web, with titles, links and engines")
def results(module: "WebSearch", body: ResultsBody):
    current = _searcher(module)
    outcome = current.search(body.engine, body.query)
    hits = outcome.hits(body.max_results or current.settings.max_results)
    return jsonify({"results": [h.as_dict() for h in hits], "engine": outcome.answer.engine,
                    "cached": outcome.cached, "failed": [f.as_dict() for f in outcome.failed]})


@routes.api("/api/websearch/engines", responses={200: EngineList},
            summary="Installed engines, fallback order and the SillyTavern name mapping")
def engines(module: "WebSearch"):
    status = _searcher(module).status()
    return jsonify({"engines": module.engine_list(), "order": status["order"],
                    "sillytavern": status["sillytavern"]})

