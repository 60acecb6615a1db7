"""Named emotion template sets saved on the server (``assets/emotions/sets/<name>.json``).

A set is one JSON file in the format ``/api/talkinghead/load_emotion_templates`` accepts,
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

from . import pose as P
from .settings import ASSETS

SETS_DIR = ASSETS / "emotions" / "sets"
SETS_DIR_ENV = "GREENROOM_EMOTION_SETS_DIR"  # tests and read-only installs point this elsewhere
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
DEFAULT_SET = "default"        # the shipped templates (assets/emotions/*.json); read-only
MAX_EMOTIONS = 256
MAX_FILE_BYTES = 2 * 2**20


class StoreError(ValueError):
    """A bad set name (400), a missing set (404), or a refused write (409)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def sets_dir() -> Path:
    configured = os.environ.get(SETS_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else SETS_DIR


def check_name(name: str) -> str:
    """A set name: letters, digits, '_' and '-', 1-64 characters, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StoreError(f"name: '{str(name)[:80]}' is not a valid set name (1-64 letters, digits, '_' or '-', "
                         "starting with a letter or digit)")
    return name


def normalise(templates: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Pose vectors -> the JSON document: emotions sorted, morphs in THA3 order, zeros left out."""
    return {name: P.to_dict(templates[name], nonzero=True) for name in sorted(templates)}


class TemplateStore:
    """Reads and writes named sets in one folder; every path is derived from a validated name."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = (folder or sets_dir()).resolve()

    def path(self, name: str) -> Path:
        check_name(name)
        path = (self.folder / f"{name}.json").resolve()
        if path.parent != self.folder:  # cannot happen with the pattern above; kept as the last guard
            raise StoreError(f"name: '{name}' leaves the sets folder")
        return path

    def names(self) -> list[dict[str, Any]]:
        out = []
        if self.folder.is_dir():
            for file in sorted(self.folder.glob("*.json")):
                if _NAME.match(file.stem) and file.stem != DEFAULT_SET:
                    stat = file.stat()
                    out.append({"name": file.stem, "bytes": stat.st_size,
                                "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime))})
        return out

    def load(self, name: str) -> dict[str, np.ndarray]:
        """The set's pose vectors (validated like a client's templates)."""
        path = self.path(name)
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
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return not exists

    def delete(self, name: str) -> None:
        path = self.path(name)
        if name == DEFAULT_SET:
            raise StoreError("name: 'default' is the shipped set and cannot be deleted", status=409)
        if not path.is_file():
            raise StoreError(f"name: no emotion set named '{name}'", status=404)
        path.unlink()
