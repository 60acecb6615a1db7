"""Server configuration: the ``[server]`` table of plugins.toml, overridden by command-line flags,
and validation of each ``[modules.<name>]`` table against that module's settings model."""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_KEY_FILE = "~/.config/greenroom/api_key.txt"
LOCAL_ORIGINS = ["http://localhost", "https://localhost", "http://127.0.0.1", "https://127.0.0.1", "http://[::1]",
                 "https://[::1]"]
"""Pages on this machine, on any port: SillyTavern on localhost:8000, the server's own page."""


class ConfigError(Exception):
    """A configuration problem that stops start-up; the message names file, module and key."""


class ServerSettings(BaseModel):
    """The ``[server]`` table. Command-line flags override these."""

    model_config = ConfigDict(extra="forbid")

    enable_modules: list[str] = Field([], description="Modules to serve, as --enable-modules.")
    port: int = Field(5100, ge=1, le=65535, description="TCP port (SillyTavern's default is 5100).")
    listen: bool = Field(False, description="Bind 0.0.0.0 instead of 127.0.0.1 (reachable from the network).")
    secure: bool = Field(False, description="Require 'Authorization: Bearer <key>' on every non-exempt route.")
    api_key_file: str = Field(DEFAULT_KEY_FILE, description="Where the API key is kept; created with a random key if missing.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Default compute device for modules whose device is 'auto'.")
    cuda_device: str = Field("cuda:0", pattern=r"^cuda(:\d+)?$", description="Which CUDA device --cuda means.")
    max_content_length_mb: float = Field(100, gt=0, le=4096, description="Largest request body in MiB (413 above).")
    threads: int = Field(8, ge=1, le=256, description="Worker threads for ordinary requests.")
    cors_origins: list[str] = Field(LOCAL_ORIGINS, description="Web pages (origins) that may call this server from a browser: 'http://host' allows any port, 'http://host:port' one port, '*' every page. Other pages get no CORS headers, and their POST, PUT, PATCH and DELETE get 403. A SillyTavern opened through a LAN address needs that address here, e.g. 'http://192.168.1.5:8000'.")
    allowed_hosts: list[str] = Field([], description="Host names this server answers to besides localhost, its loopback addresses and, with --listen, the machine's own names and addresses; other Host headers get 403 (DNS rebinding). Add the name clients use behind a reverse proxy or a DNS name.")
    allow_remote_settings: bool = Field(False, description="Let the settings API change settings that name a URL the server fetches or hold a secret (websearch's engine URLs and keys); off, they are set in plugins.toml only.")
    max_streams: int = Field(8, ge=0, le=256, description="Concurrent long-lived streams (video feeds, audio streams); each holds its own worker thread on top of 'threads'.")
    max_streams_per_client: int = Field(0, ge=0, le=256, description="Streams one client address may hold at once; 0 means max_streams - 1, so no single client takes every slot. Behind a reverse proxy every client has the proxy's address: raise it to max_streams there.")
    access_log: bool = Field(False, description="Log every request's shape (method, path, status, size, time); failed requests are always logged.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Logging verbosity.")
    worker_id: str = Field("", pattern=r"^[A-Za-z0-9_]{0,32}$", description="Behind a load balancer: this worker's "
                           "name, the prefix of the avatar instance ids it creates ('w1' -> 'w1-3f2a...'); --worker-id.")
    drain_timeout_s: float = Field(0, ge=0, le=86400, description="Behind a load balancer: on SIGTERM, drain for up to "
                                   "this long first (/health answers 503, no new avatar instances, open feeds keep "
                                   "running); 0 stops at once. --drain-timeout (deploy/README.md).")


    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValueError(f"'{origin}' is not '*' or an origin like 'http://192.168.1.5:8000' (no path)")
        return value


class HostConfig(BaseModel):
    """Everything ``create_app`` needs: server settings, raw module tables, and where they came from."""

    server: ServerSettings = ServerSettings()
    modules: dict[str, dict[str, Any]] = {}
    source: str = "<defaults>"


def validate_module_settings(source: str, module: str, settings_cls: type[BaseModel],
                             table: dict[str, Any]) -> BaseModel:
    try:
        return settings_cls.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(explain(source, f"[modules.{module}]", exc, settings_cls)) from None


def explain(source: Any, table: str, exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: {table} unknown key '{key}'; expected one of: {', '.join(model.model_fields)}")
        else:
            lines.append(f"{source}: {table} key '{key}': {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
