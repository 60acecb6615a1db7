"""The module's settings: general search behaviour, then one flat ``<engine>_<option>`` field per
option of each built-in engine (generated from the engine's own settings model, so the two never
drift apart), then ``engine_options`` for engines that third-party plugins add."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from greenroom import ModuleSettings
from greenroom.module import SENSITIVE
from greenroom.errors import describe_validation_error

from .brave import BraveEngine
from .duckduckgo import DuckDuckGoEngine
from .engines import Engine, EngineSettings
from .searxng import SearxngEngine

BUILTIN_ENGINES: tuple[type[Engine], ...] = (SearxngEngine, DuckDuckGoEngine, BraveEngine)
ENGINE_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"
AUTO = "auto"


class GeneralSettings(ModuleSettings):
    """What every search does, whichever engine answers."""

    engines: list[str] = Field(
        ["searxng", "duckduckgo", "brave"], min_length=1, max_length=20,
        description="Engines in the order they are tried (fallback order). Engines that are not configured "
                    "(no URL or key) are skipped; engines added by plugins are named here too.")
    fallback: bool = Field(True, description="When an engine fails, try the next usable one in 'engines'.")
    sillytavern_google: str = Field(
        AUTO, pattern=ENGINE_NAME,
        description="What SillyTavern's engine 'google' (its default) means: 'auto' (the first usable engine "
                    "in 'engines') or an engine name.")
    sillytavern_duckduckgo: str = Field(
        "duckduckgo", pattern=ENGINE_NAME,
        description="What SillyTavern's engine 'duckduckgo' means: 'auto' or an engine name.")
    max_results: int = Field(10, ge=1, le=50, description="Results per answer unless the request says otherwise.")
    max_query_chars: int = Field(500, ge=1, le=4000, description="Longer queries are refused with 400.")
    max_snippet_chars: int = Field(500, ge=50, le=5000, description="Snippets are cut to this many characters.")
    safesearch: Literal["off", "moderate", "strict"] = Field("moderate", description="Filtering of adult results.")
    language: str = Field("", pattern=r"^([a-zA-Z]{2,3}(-[a-zA-Z]{2,4})?)?$",
                          description="Preferred result language, e.g. 'en' or 'de-DE'; empty: the engine's default.")
    cache_ttl_s: float = Field(600, ge=0, le=86400, description="How long an answer is reused; 0 turns the cache off.")
    cache_entries: int = Field(512, ge=0, le=100000, description="Most answers kept in the cache.")
    user_agent: str = Field("Mozilla/5.0 (compatible; Greenroom-websearch/1.0)", min_length=1, max_length=300,
                            description="User-Agent header sent to engines and by webfetch.")
    webfetch_allow_private: bool = Field(  # SENSITIVE: turned on from a page, webfetch would reach the LAN
        False, json_schema_extra=SENSITIVE,
        description="webfetch: also fetch pages whose host resolves to a loopback, private (LAN), link-local "
                    "or other non-public address. Off: such URLs are refused, also when a redirect leads there.")
    webfetch_allowed_hosts: list[str] = Field(
        [], max_length=100, json_schema_extra=SENSITIVE,
        description="webfetch: host names or addresses, as written in URLs, that are fetched "
                    "even though they resolve to a non-public address (e.g. an intranet wiki).")
    webfetch_timeout_s: float = Field(15.0, gt=0, le=120, description="webfetch: the whole fetch (every redirect, "
                                                                      "connection and body) must end within this.")
    webfetch_max_bytes: int = Field(5 * 2**20, ge=2**16, le=100 * 2**20,
                                    description="webfetch: pages larger than this (decompressed) are refused.")
    webfetch_max_chars: int = Field(100_000, ge=1000, le=2_000_000,
                                    description="webfetch: the page's text is cut to this many characters.")


def _flat_fields(engines: tuple[type[Engine], ...]) -> dict[str, tuple[Any, FieldInfo]]:
    """``searxng_url`` etc.: each option of each engine as a top-level field, described with its engine."""
    fields: dict[str, tuple[Any, FieldInfo]] = {}
    for engine in engines:
        own = [o for o in engine.Settings.model_fields if o not in EngineSettings.model_fields]
        for option in own + list(EngineSettings.model_fields):  # the engine's own options first
            info = engine.Settings.model_fields[option]
            described = FieldInfo.merge_field_infos(info, description=f"[{engine.name}] {info.description}")
            fields[f"{engine.name}_{option}"] = (info.annotation, described)
    return fields


WebSearchSettings = create_model(
    "WebSearchSettings", __base__=GeneralSettings, __doc__="Settings of the websearch module.",
    **_flat_fields(BUILTIN_ENGINES),
    engine_options=(dict[str, dict[str, Any]], Field(
        {}, json_schema_extra=SENSITIVE,
        description="Options of engines added by plugins, as [modules.websearch.engine_options.<engine>] "
                        "tables; for built-in engines they override the flat <engine>_<option> keys.")),
)


class SettingsProblem(ValueError):
    """Settings that validate on their own but do not fit the installed engines."""


def engine_settings(settings: ModuleSettings, engine: type[Engine]) -> EngineSettings:
    """One engine's settings: its flat fields (built-ins) overlaid by ``engine_options[<name>]``."""
    flat = {option: getattr(settings, f"{engine.name}_{option}") for option in engine.Settings.model_fields
            if f"{engine.name}_{option}" in type(settings).model_fields}
    extra = settings.engine_options.get(engine.name, {})
    try:
        return engine.Settings.model_validate({**flat, **extra})
    except ValidationError as exc:
        raise SettingsProblem(describe_validation_error(exc, prefix=f"engine_options.{engine.name}.")) from None


def check_names(settings: ModuleSettings, known: set[str]) -> None:
    """Every engine named in the settings must be installed."""
    for field in ("engines", "sillytavern_google", "sillytavern_duckduckgo", "engine_options"):
        value = getattr(settings, field)
        names = [value] if isinstance(value, str) else list(value)
        allowed = known if field in ("engines", "engine_options") else known | {AUTO}
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise SettingsProblem(f"{field}: unknown engine {', '.join(map(repr, unknown))}; installed engines: "
                                  f"{', '.join(sorted(known))}")
