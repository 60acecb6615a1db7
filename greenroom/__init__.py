"""Greenroom: a pluggable, SillyTavern-Extras-compatible module host."""
__version__ = "0.1.0"

from .api import ApiBlueprint, ApiError, json_body  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .module import Compute, ComputeSettings, Module, ModuleSettings, Resources, load_time_field  # noqa: E402

__all__ = ["ApiBlueprint", "ApiError", "Compute", "ComputeSettings", "Module", "ModuleSettings", "Resources",
           "hookimpl", "json_body", "load_time_field", "create_app"]


def create_app(*args, **kwargs):
    """See :func:`greenroom.app.create_app` (imported lazily so plugins can import greenroom cheaply)."""
    from .app import create_app as factory
    return factory(*args, **kwargs)
