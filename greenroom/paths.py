"""Where Greenroom's files live: the shipped assets, and the user's own data outside the installation.

Shipped assets (characters, emotions, backdrops, settings) are the repository's ``assets/`` folder,
which the wheel carries as the package ``greenroom_assets``; a plain checkout uses the folder itself.
The user's own files (characters, saved emotion sets, an ``animator.json``) live in the user data
folder, ``$GREENROOM_DATA_DIR`` or the platform's (``platformdirs``), and caches in
``$GREENROOM_DATA_DIR/cache`` or the platform's cache folder. Reads look in the user's folder first,
then in the shipped one, so a user's file of the same name wins. No Flask, no host imports.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import platformdirs

APP = "greenroom"
DATA_DIR_ENV = "GREENROOM_DATA_DIR"


def assets_dir() -> Path:
    """The shipped assets: the installed ``greenroom_assets`` package, else the checkout's ``assets/``."""
    spec = importlib.util.find_spec("greenroom_assets")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "assets"


def data_dir() -> Path:
    """The user's own files (read at each call, so a test can point it elsewhere)."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(configured).expanduser() if configured else platformdirs.user_data_path(APP)


def cache_dir() -> Path:
    """Caches: ``cache/`` in a configured data folder, else the platform's cache folder."""
    return data_dir() / "cache" if os.environ.get(DATA_DIR_ENV, "").strip() else platformdirs.user_cache_path(APP)


def search_path(relative: str) -> list[Path]:
    """``relative`` in the user's folder, then in the shipped assets (the order reads go in)."""
    return [data_dir() / relative, assets_dir() / relative]


def find(relative: str) -> Path | None:
    """The first existing file among :func:`search_path`, or None."""
    return next((p for p in search_path(relative) if p.is_file()), None)
