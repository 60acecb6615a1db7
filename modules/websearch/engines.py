"""The contract of a search engine backend, shared by the built-in engines and third-party ones.

A plugin adds an engine by implementing the ``register_websearch_engines`` hook and calling
``register(MyEngine)`` with a subclass of :class:`Engine`. The module builds one instance per
engine from that engine's :class:`EngineSettings` and calls :meth:`Engine.search` from request
threads, so engines must be thread-safe (the built-in ones keep no per-request state).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from .errors import EngineError, EngineMalformed, EngineRateLimited, EngineTimeout, FailureKind
from .fetch import Fetched, HttpClient

__all__ = ["Engine", "EngineError", "EngineMalformed", "EngineRateLimited", "EngineSettings", "EngineTimeout",
           "FailureKind", "Hit", "Query", "json_object", "raise_for_status", "retry_after_s", "text_field"]


class EngineSettings(BaseModel):
    """Options every engine has. Subclasses add their own (URL, API key, region...)."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(8.0, gt=0, le=120, description="Give up on one answer after this many seconds.")
    min_interval_s: float = Field(1.0, ge=0, le=600,
                                  description="Polite spacing between two requests to this engine.")
    cooldown_s: float = Field(60.0, ge=0, le=86400,
                              description="How long to leave the engine alone after it says 'too many requests' "
                                          "without a Retry-After.")


@dataclass(frozen=True)
class Query:
    """What an engine is asked: the normalised query text and the user's preferences."""

    text: str
    max_results: int
    safesearch: Literal["off", "moderate", "strict"] = "moderate"
    language: str = ""


@dataclass(frozen=True)
class Hit:
    """One search result, already cleaned to plain text."""

    title: str
    url: str
    snippet: str
    engine: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Engine:
    """Base class of a search engine backend.

    Subclasses set ``name`` (what clients and settings call it), ``description`` and
    ``Settings``, and implement :meth:`search`. :meth:`problem` says why the engine cannot be
    used as configured (no URL, no key), so it is skipped instead of failing every request.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Settings: ClassVar[type[EngineSettings]] = EngineSettings

    def __init__(self, settings: EngineSettings, http: HttpClient) -> None:
        self.settings = settings
        self.http = http

    def problem(self) -> str | None:
        """Why this engine cannot be used as configured, or None when it can."""
        return None

    def search(self, query: Query) -> list[Hit]:
        """Return results in the engine's order. Raise :class:`EngineError` (or a subclass) on failure."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""
        self.http.close()


def raise_for_status(fetched: Fetched) -> None:
    """The usual HTTP failures as EngineErrors: 429 with its Retry-After, other non-2xx by number."""
    if fetched.status == 429:
        raise EngineRateLimited("HTTP 429 too many requests", retry_after=retry_after_s(fetched.headers))
    if not 200 <= fetched.status < 300:
        raise EngineError(f"HTTP {fetched.status}", "http")


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Retry-After`` (number or HTTP date) or ``X-RateLimit-Reset`` (first value)."""
    value = headers.get("Retry-After") or (headers.get("X-RateLimit-Reset") or "").split(",")[0]
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return min(max(seconds, 1.0), 86400.0)


def json_object(fetched: Fetched) -> dict[str, Any]:
    """The answer as a JSON object, or EngineMalformed."""
    doc = fetched.json()
    if not isinstance(doc, dict):
        raise EngineMalformed(f"answer is JSON but not an object ({type(doc).__name__})")
    return doc


def text_field(item: dict[str, Any], key: str) -> str:
    """A string field of an engine's JSON result, '' when missing or of another type."""
    value = item.get(key)
    return value if isinstance(value, str) else ""
