"""Named emotion template sets saved on the server (``emotions/sets/<name>.json`` in the user data folder).

Sets are saved in the user data folder (see :mod:`greenroom.paths`) and read from it first, then
from the sets shipped in the assets, which are read-only. A set is one JSON file in the format ``/api/talkinghead/load_emotion_templates`` accepts,
``{emotion: {morph: value}}``, so a downloaded set, a saved set and a set sent by a
client are the same document. Names are plain words: they never become paths.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from greenroom.errors import Error
from greenroom.paths import assets_dir, data_dir

from . import pose as P

SETS = "emotions/sets"     # below the user data folder (saved sets) and the shipped assets (read-only sets)
SETS_DIR_ENV = "GREENROOM_EMOTION_SETS_DIR"  # saves here instead of the user data folder
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
DEFAULT_SET = "default"        # the shipped templates (assets/emotions/*.json); read-only
MAX_EMOTIONS = 256
MAX_FILE_BYTES = 2 * 2**20
LEFTOVER_AGE_S = 60
"""A temporary file this old is a save that never finished (the process was killed mid-write)."""


class StoreError(Error, ValueError):
    """A bad set name (400), a missing set (404), a refused write (409) or an unreadable set (500); the
    answer names the field its message starts with (``name``, else ``emotions``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message, field="name" if message.startswith("name") else "emotions")


def sets_dir() -> Path:
    """Where sets are saved: ``$GREENROOM_EMOTION_SETS_DIR``, else ``emotions/sets`` in the user data folder."""
    configured = os.environ.get(SETS_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else data_dir() / SETS


def check_name(name: str) -> str:
    """A set name: letters, digits, '_' and '-', 1-64 characters, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise StoreError(f"name: '{str(name)[:80]}' is not a valid set name (1-64 letters, digits, '_' or '-', "
                         "starting with a letter or digit)")
    return name


def normalise(templates: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Pose vectors -> the JSON document: emotions sorted, morphs in THA3 order, zeros left out."""
    return {name: P.to_dict(templates[name], nonzero=True) for name in sorted(templates)}


class TemplateStore:
    """Writes named sets in one folder and reads them from it, then from the shipped (read-only) sets;
    every path is derived from a validated name."""

    def __init__(self, folder: Path | None = None, shipped: Path | None = None) -> None:
        self.folder = (folder or sets_dir()).resolve()
        self.shipped = (shipped or assets_dir() / SETS).resolve()

    def path(self, name: str, folder: Path | None = None) -> Path:
        check_name(name)
        folder = folder or self.folder
        path = (folder / f"{name}.json").resolve()
        if path.parent != folder:  # cannot happen with the pattern above; kept as the last guard
            raise StoreError(f"name: '{name}' leaves the sets folder")
        return path

    def names(self) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for folder in (self.folder, self.shipped):
            for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                if _NAME.fullmatch(file.stem) and file.stem != DEFAULT_SET and file.stem not in found:
                    stat = file.stat()
                    found[file.stem] = {"name": file.stem, "bytes": stat.st_size, "read_only": folder == self.shipped,
                                        "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime))}
        return [found[name] for name in sorted(found)]

    def load(self, name: str) -> dict[str, np.ndarray]:
        """The set's pose vectors (validated like a client's templates): the user's, else the shipped one."""
        path = self.path(name)
        if not path.is_file():
            path = self.path(name, self.shipped)
        if name == DEFAULT_SET or not path.is_file():
            raise StoreError(f"name: no emotion set named '{name}'", status=404)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise StoreError(f"emotion set '{name}' is larger than {MAX_FILE_BYTES} bytes", status=500)
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise StoreError(f"emotion set '{name}' is not a JSON object", status=500)
        return P.parse_templates(data)

    def save(self, name: str, templates: Mapping[str, np.ndarray], overwrite: bool = True) -> bool:
        """Write the set atomically; returns whether it was created (False: replaced)."""
        path = self.path(name)
        if name == DEFAULT_SET:
            raise StoreError("name: 'default' is the shipped set and cannot be overwritten", status=409)
        if not templates:
            raise StoreError("emotions: an empty set; give at least one emotion")
        if len(templates) > MAX_EMOTIONS:
            raise StoreError(f"emotions: {len(templates)} emotions; at most {MAX_EMOTIONS}")
        exists = path.is_file()
        if exists and not overwrite:
            raise StoreError(f"name: an emotion set named '{name}' exists (overwrite=true replaces it)", status=409)
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(normalise(templates), indent=1) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())  # the rename must never publish a file whose bytes are not on disk
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return not exists

    def remove_leftovers(self) -> int:
        """Delete the temporary files of saves that were killed half-way (called at start-up); returns how many."""
        removed = 0
        for tmp in self.folder.glob(".*.tmp") if self.folder.is_dir() else []:
            try:
                if time.time() - tmp.stat().st_mtime > LEFTOVER_AGE_S:
                    tmp.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def delete(self, name: str) -> None:
        path = self.path(name)
        if name == DEFAULT_SET or (not path.is_file() and self.path(name, self.shipped).is_file()):
            raise StoreError(f"name: '{name}' is a shipped set and cannot be deleted", status=409)
        if not path.is_file():
            raise StoreError(f"name: no emotion set named '{name}'", status=404)
        path.unlink()
