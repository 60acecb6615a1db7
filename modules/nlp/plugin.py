"""Entry point of the built-in nlp module (``greenroom.modules`` group)."""
from greenroom import hookimpl

from .module import Nlp


@hookimpl
def register_modules(register):
    register(Nlp)
