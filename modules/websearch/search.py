"""One search: pick the engine order, answer from the cache, pace and ask engines, fall back,
clean the results, and turn 'every engine failed' into a 502/504 that names the engines."""
from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Hashable
from urllib.parse import quote_plus, urlsplit

from greenroom.errors import BadRequest, Error

from .cache import TTLCache
from .engines import Engine, EngineError, Hit, Query
from .ratelimit import RateLimiter
from .settings import AUTO
from .text import one_line, truncate

log = logging.getLogger("greenroom.websearch")

MAX_TITLE_CHARS = 300
MAX_URL_CHARS = 2048
SILLYTAVERN_NAMES = ("google", "duckduckgo")


@dataclass
class EngineState:
    """What outlives a settings change for one engine: its pacing and its counters."""

    limiter: RateLimiter = field(default_factory=RateLimiter)
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    total_ms: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, elapsed_ms: float, failure: "Failure | None") -> None:
        with self.lock:
            self.requests += 1
            self.total_ms += elapsed_ms
            if failure is not None:
                self.failures[failure.kind] = self.failures.get(failure.kind, 0) + 1
                self.last_error = failure.message

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            mean = self.total_ms / self.requests if self.requests else None
            return {"requests": self.requests, "failures": dict(self.failures), "last_error": self.last_error,
                    "mean_ms": round(mean, 1) if mean is not None else None,
                    "cooling_down_s": round(self.limiter.cooling_for(), 1)}


@dataclass(frozen=True)
class Failure:
    engine: str
    kind: str
    message: str
    retry_after: float | None = None

    def as_dict(self) -> dict[str, str]:
        return {"engine": self.engine, "kind": self.kind, "error": self.message}


@dataclass(frozen=True)
class Answer:
    """What is cached: the engine that answered and its cleaned results."""

    engine: str
    hits: tuple[Hit, ...]


@dataclass
class Outcome:
    answer: Answer
    cached: bool
    failed: list[Failure]

    def hits(self, limit: int) -> list[Hit]:
        return list(self.answer.hits[:limit])


def normalise_query(text: str, max_chars: int) -> str:
    """One line of text, or a 400 naming the field."""
    query = one_line(text)
    if not query:
        raise BadRequest("query: must not be empty")
    if len(query) > max_chars:
        raise BadRequest(f"query: {len(query)} characters, more than the limit of {max_chars} "
                         "(setting max_query_chars)", limit=max_chars)
    return query


def safe_url(url: str) -> str | None:
    """Only absolute http(s) links reach clients (no javascript:, data:, relative junk)."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def finalise(hits: list[Hit], snippet_chars: int) -> tuple[Hit, ...]:
    """Every engine's results, built-in or not, leave as one-line text with safe, unique links."""
    seen: set[str] = set()
    out: list[Hit] = []
    for hit in hits:
        url = safe_url(hit.url) if isinstance(hit.url, str) else None
        if url is None or url in seen:
            continue
        seen.add(url)
        out.append(Hit(title=truncate(one_line(str(hit.title)), MAX_TITLE_CHARS), url=url,
                       snippet=truncate(one_line(str(hit.snippet)), snippet_chars), engine=hit.engine))
    return tuple(out)


class Searcher:
    """Built from one settings snapshot; replaced (not mutated) when the settings change."""

    def __init__(self, settings: Any, engines: dict[str, Engine], states: dict[str, EngineState]) -> None:
        self.settings = settings
        self.engines = engines
        self.states = states
        self.usable = [n for n in dict.fromkeys(settings.engines) if engines[n].problem() is None]
        self.cache: TTLCache[Answer] = TTLCache(settings.cache_ttl_s, settings.cache_entries)
        self._inflight: dict[Hashable, threading.Event] = {}
        self._inflight_lock = threading.Lock()

    # -- which engines, in which order -------------------------------------------------------------

    def plan(self, requested: str | None) -> list[str]:
        """The engines to try for ``requested`` ('google', 'duckduckgo', 'auto', an engine name or None).

        SillyTavern's names go through the ``sillytavern_*`` settings; if the engine they name is not
        usable they mean 'auto'. An explicitly named engine that is unknown or unusable is a 400.
        """
        asked = (requested or "").strip().lower() or AUTO
        target, from_alias = asked, asked in SILLYTAVERN_NAMES
        if from_alias:
            target = getattr(self.settings, f"sillytavern_{asked}")
        elif target != AUTO:
            self._check_available(target)
        first = [target] if target in self.usable else self.usable[:1]
        rest = [n for n in self.usable if n not in first] if self.settings.fallback else []
        if not first:
            raise Error(503, "no search engine is configured; see modules/websearch/README.md")
        return first + rest

    def _check_available(self, name: str) -> None:
        if name not in self.engines:
            raise BadRequest(f"engine: unknown engine '{name}'; use one of: {', '.join(self.accepted_names())}")
        if name not in self.usable:
            why = self.engines[name].problem() or "not listed in the 'engines' setting"
            raise BadRequest(f"engine: '{name}' is not available: {why}; usable engines: "
                             f"{', '.join(self.usable) or '(none)'}")

    def accepted_names(self) -> list[str]:
        return [AUTO, *SILLYTAVERN_NAMES, *(n for n in self.engines if n not in SILLYTAVERN_NAMES)]

    # -- searching ---------------------------------------------------------------------------------

    def search(self, requested: str | None, text: str) -> Outcome:
        started = time.perf_counter()
        s = self.settings
        query = Query(normalise_query(text, s.max_query_chars), 50, s.safesearch, s.language)
        order = self.plan(requested)
        key = (tuple(order), query.text, query.safesearch, query.language)
        outcome = self._cached_or_single_flight(key, order, query)
        # The query's length, never its text; cache hits are cheap and frequent, so only at DEBUG.
        log.log(logging.DEBUG if outcome.cached else logging.INFO,
                "search: %d-char query, engine %s -> %s, %d results, cached=%s, %d failed, %.1f ms",
                len(query.text), requested or AUTO, outcome.answer.engine, len(outcome.answer.hits),
                outcome.cached, len(outcome.failed), (time.perf_counter() - started) * 1000)
        return outcome

    def _cached_or_single_flight(self, key: Hashable, order: list[str], query: Query) -> Outcome:
        """Concurrent identical searches wait for the first one instead of each asking the engine."""
        answer = self.cache.get(key)
        if answer is not None:
            return Outcome(answer, True, [])
        if not self.cache.enabled:
            return self._ask_in_order(key, order, query)
        with self._inflight_lock:
            event = self._inflight.get(key)
            leader = event is None
            if leader:
                event = self._inflight[key] = threading.Event()
        if not leader:
            event.wait(self.worst_case_s(order))
            answer = self.cache.get(key)
            if answer is not None:
                return Outcome(answer, True, [])
            return self._ask_in_order(key, order, query)
        try:
            return self._ask_in_order(key, order, query)
        finally:
            with self._inflight_lock:
                del self._inflight[key]
            event.set()

    def worst_case_s(self, order: list[str]) -> float:
        """How long asking every engine in ``order`` can take: per engine, a queue wait of up to its
        timeout, then connecting and waiting for the answer's headers, each up to its timeout."""
        return sum(3 * self.engines[n].settings.timeout_s for n in order) + 1

    def _ask_in_order(self, key: Hashable, order: list[str], query: Query) -> Outcome:
        failures: list[Failure] = []
        for name in order:
            try:
                hits = self._ask(name, query)
            except EngineError as exc:
                message = _without_query(str(exc), query.text)
                failures.append(Failure(name, exc.kind, message, exc.retry_after))
                log.warning("engine %s failed (%s): %s", name, exc.kind, failures[-1].message)
                continue
            answer = Answer(name, finalise(hits, self.settings.max_snippet_chars))
            self.cache.put(key, answer)
            return Outcome(answer, False, failures)
        raise all_failed(failures)

    def _ask(self, name: str, query: Query) -> list[Hit]:
        """One engine, paced; a 'slow down' from the engine starts its cool-down."""
        engine, state = self.engines[name], self.states[name]
        state.limiter.wait_turn(engine.settings.min_interval_s, max_wait_s=engine.settings.timeout_s)
        started = time.perf_counter()
        failure = None
        try:
            return engine.search(query)
        except EngineError as exc:
            failure = Failure(name, exc.kind, str(exc))
            if exc.kind == "rate_limited":
                exc.retry_after = exc.retry_after or engine.settings.cooldown_s
                state.limiter.cool_down(exc.retry_after)
            raise
        except Exception as exc:  # a buggy engine plugin is one failed engine, not a 500
            # Type and frames only: an exception's message may hold the query.
            log.error("engine %s crashed (%s)", name, type(exc).__name__)
            log.debug("engine %s crash frames:\n%s", name, "".join(traceback.format_tb(exc.__traceback__)))
            failure = Failure(name, "error", f"engine crashed ({type(exc).__name__})")
            raise EngineError(failure.message) from None
        finally:
            state.record((time.perf_counter() - started) * 1000, failure)

    def status(self) -> dict[str, Any]:
        return {"order": self.usable, "cache": self.cache.stats(),
                "sillytavern": {n: getattr(self.settings, f"sillytavern_{n}") for n in SILLYTAVERN_NAMES}}


def _without_query(message: str, query: str) -> str:
    """Engine messages (third-party ones included) are logged and returned: keep the query out."""
    for form in {query, quote_plus(query)}:
        if len(form) >= 3:
            message = message.replace(form, "<query>")
    return message


def all_failed(failures: list[Failure]) -> Error:
    """504 when every engine timed out, else 502; Retry-After when every one asked us to wait."""
    kinds = {f.kind for f in failures}
    status = 504 if kinds == {"timeout"} else 502
    detail = "; ".join(f"{f.engine}: {f.message}" for f in failures)
    names = ", ".join(f"'{f.engine}'" for f in failures)
    waits = [f.retry_after for f in failures if f.retry_after]
    headers = {"Retry-After": str(math.ceil(min(waits)))} if kinds == {"rate_limited"} and waits else None
    return Error(status, f"search engine {names} failed: {failures[0].message}" if len(failures) == 1
                 else f"all search engines failed ({names}): {detail}",
                 headers=headers, engine=failures[0].engine, failures=[f.as_dict() for f in failures])
