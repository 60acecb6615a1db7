"""Entry point of the built-in classify module (``greenroom.modules`` group)."""
from greenroom import hookimpl

from .module import Classify


@hookimpl
def register_modules(register):
    register(Classify)
