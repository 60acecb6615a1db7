"""Greenroom: a pluggable, SillyTavern-Extras-compatible module host.

``import greenroom`` stays free of Flask, so a module's library code can import the small host types
(``Module``, settings, errors) cheaply. The Flask side (``Routes``, ``ApiBlueprint``, ``json_body``,
``create_app``) is imported on first use.
"""
from typing import Any

from .context import Context
from .errors import ApiError, BadRequest, Busy, Error, Invalid, NotFound
from .hookspecs import hookimpl, hookspec
from .module import Compute, ComputeSettings, Module, ModuleSettings, Resources, WebPanel, load_time_field

__version__ = "0.1.0"
__all__ = ["ApiBlueprint", "ApiError", "BadRequest", "Busy", "Compute", "ComputeSettings", "Context", "Error",
           "Invalid", "Module", "ModuleSettings", "NotFound", "Resources", "Routes", "WebPanel", "create_app",
           "hookimpl", "hookspec", "json_body", "load_time_field"]
_FLASK_SIDE = {"ApiBlueprint": "api", "json_body": "api", "Routes": "views", "create_app": "app"}


def __getattr__(name: str) -> Any:
    """``Routes``, ``ApiBlueprint``, ``json_body`` and ``create_app`` load Flask only when asked for."""
    if name not in _FLASK_SIDE:
        raise AttributeError(f"module 'greenroom' has no attribute '{name}'")
    from importlib import import_module
    return getattr(import_module(f"greenroom.{_FLASK_SIDE[name]}"), name)
