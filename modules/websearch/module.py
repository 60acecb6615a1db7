"""The websearch module: engines come from its own ``register_websearch_engines`` hook (hookspecs.py),
which every plugin may implement (the built-in ones included), and a :class:`Searcher` is rebuilt
whenever the settings change."""
from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from greenroom import Compute, Context, Error, Invalid, Module, ModuleSettings, Resources

from . import hookspecs
from .contract import Found, Page, PageFormat, WebFetching, WebSearching
from .engines import Engine
from .fetch import HttpClient, install_log_redaction
from .search import EngineState, Searcher
from .settings import AUTO, ENGINE_NAME, SettingsProblem, WebSearchSettings, check_names, engine_settings
from .webfetch import FetchRules, fetch_page

log = logging.getLogger("greenroom.websearch")


def collect_engines(context: Context) -> tuple[dict[str, type[Engine]], dict[str, str]]:
    """Engine classes by name, and the plugin each came from. Built-in plugins win name clashes."""
    classes: dict[str, type[Engine]] = {}
    origin: dict[str, str] = {}
    for plugin, cls in context.collect("register_websearch_engines", Engine):
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not re.fullmatch(ENGINE_NAME, name) or name == AUTO:
            log.error("plugin %s registered engine %r with an invalid name %r", plugin, cls.__name__, name)
        elif name in classes:
            log.error("plugin %s registered engine '%s', already provided by plugin %s; ignored",
                      plugin, name, origin[name])
        else:
            classes[name], origin[name] = cls, plugin
    return classes, origin


class WebSearch(Module):
    name = "websearch"
    version = "1.0.0"
    description = "Web search for LLM tools over plain HTTP: SearXNG, DuckDuckGo, Brave Search, plugin engines."
    Settings = WebSearchSettings
    resources = Resources(device="cpu", memory_mb=30)
    hookspecs = hookspecs

    def __init__(self, context: Context, settings: ModuleSettings) -> None:
        super().__init__(context, settings)
        self.engine_classes: dict[str, type[Engine]] = {}
        self.engine_origin: dict[str, str] = {}
        self.states: dict[str, EngineState] = {}
        self.searcher: Searcher | None = None
        self.key_hosts: dict[str, str] = {}
        self._swap_lock = threading.Lock()

    def load(self, compute: Compute) -> None:
        install_log_redaction()
        self.engine_classes, self.engine_origin = collect_engines(self.context)
        try:
            self.searcher = self._build(self.settings)
        except SettingsProblem as exc:
            raise ValueError(f"[modules.websearch] {exc}") from None
        self.key_hosts = self._key_hosts(self.settings)  # an API key only ever goes where it went at start-up
        if not self.searcher.usable:
            problems = "; ".join(f"{n}: {e.problem()}" for n, e in self.searcher.engines.items()
                                 if n in self.settings.engines and e.problem())
            raise ValueError(f"no usable search engine ({problems})")
        log.info("engines: %s (usable, in order); installed: %s", ", ".join(self.searcher.usable),
                 ", ".join(sorted(self.engine_classes)))
        self.context.provide(WebSearching, self)
        self.context.provide(WebFetching, self)

    def find(self, query: str, engine: str | None = None, limit: int | None = None) -> list[Found]:
        """The WebSearching service (contract.py)."""
        searcher = self.searcher
        if searcher is None:
            raise Error(503, "websearch is not loaded")
        hits = searcher.search(engine, query).hits(limit or searcher.settings.max_results)
        return [Found(h.title, h.url, h.snippet, h.engine) for h in hits]

    def fetch_page(self, url: str, format: PageFormat = "markdown") -> Page:
        """The WebFetching service (contract.py), under the webfetch_* settings (webfetch.py)."""
        s = self.settings
        rules = FetchRules(s.user_agent, s.webfetch_timeout_s, s.webfetch_max_bytes, s.webfetch_max_chars,
                           s.webfetch_allow_private, frozenset(h.lower() for h in s.webfetch_allowed_hosts))
        return fetch_page(url, format, rules)

    def _build(self, settings: ModuleSettings) -> Searcher:
        """Engines for ``settings``; raises SettingsProblem naming the setting that does not fit."""
        check_names(settings, set(self.engine_classes))
        engines: dict[str, Engine] = {}
        for name, cls in self.engine_classes.items():
            options = engine_settings(settings, cls)
            engines[name] = cls(options, HttpClient(settings.user_agent, options.timeout_s))
            self.states.setdefault(name, EngineState())
        return Searcher(settings, engines, self.states)

    def _key_hosts(self, settings: ModuleSettings) -> dict[str, str]:
        """The host each engine with an API key sends it to (engines whose options have url and api_key)."""
        options = {name: engine_settings(settings, cls) for name, cls in self.engine_classes.items()}
        return {name: (urlsplit(o.url).hostname or "").lower() for name, o in options.items()
                if hasattr(o, "url") and hasattr(o, "api_key")}

    def apply_settings(self, settings: ModuleSettings) -> None:
        moved = {name: host for name, host in self._key_hosts(settings).items()
                 if self.key_hosts.get(name, host) != host}
        if moved:
            raise Invalid("; ".join(f"{name}_url: {name}'s API key is only sent to {self.key_hosts[name]}, the host "
                                    f"configured at start-up, not {host}; change it in plugins.toml and restart"
                                    for name, host in moved.items()))
        try:
            searcher = self._build(settings)
        except SettingsProblem as exc:
            raise Invalid(str(exc)) from None
        with self._swap_lock:
            old, self.searcher, self.settings = self.searcher, searcher, settings
        if old is not None:
            _close(old)

    def unload(self) -> None:
        if self.searcher is not None:
            _close(self.searcher)
            self.searcher = None

    def status(self) -> dict[str, Any]:
        searcher = self.searcher
        return {} if searcher is None else {**searcher.status(), "engines": self.engine_list()}

    def engine_list(self) -> list[dict[str, Any]]:
        """Every installed engine: where it came from, whether it is usable and how it has done."""
        searcher = self.searcher
        assert searcher is not None
        return [{"name": name, "description": engine.description, "plugin": self.engine_origin.get(name),
                 "enabled": name in searcher.settings.engines, "usable": name in searcher.usable,
                 "problem": engine.problem(), "timeout_s": engine.settings.timeout_s,
                 "min_interval_s": engine.settings.min_interval_s, **self.states[name].as_dict()}
                for name, engine in searcher.engines.items()]


def _close(searcher: Searcher) -> None:
    """Close the old engines' connection pools (requests in flight finish on their own sockets)."""
    for engine in searcher.engines.values():
        try:
            engine.close()
        except Exception:
            log.exception("engine %s failed to close", engine.name)
