"""Reading plugins.toml: the ``[server]`` table and one ``[modules.<name>]`` table per module.

Every problem stops start-up with a :class:`ConfigError` that names the file, the table and the key.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from ..config import ConfigError, HostConfig, ServerSettings, explain


def read_config_file(path: str | Path | None) -> HostConfig:
    """Parse plugins.toml. A missing default file is fine; a missing explicit file is an error."""
    if path is None:
        return HostConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; give the plugins.toml file itself") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"server", "modules"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {sorted(unknown)}; expected [server] and [modules.<name>]")
    if not isinstance(data.get("server", {}), dict):
        raise ConfigError(f"{path}: 'server' must be a table ([server])")
    try:
        server = ServerSettings.model_validate(data.get("server", {}))
    except ValidationError as exc:
        raise ConfigError(explain(path, "[server]", exc, ServerSettings)) from None
    modules = data.get("modules", {})
    if not isinstance(modules, dict):
        raise ConfigError(f"{path}: 'modules' must be tables ([modules.<name>]), not {type(modules).__name__}")
    for name, table in modules.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [modules.{name}] must be a table")
    return HostConfig(server=server, modules=modules, source=str(path))
