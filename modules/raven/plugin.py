"""Entry point of the built-in ``raven`` module."""
from greenroom import hookimpl

from .module import Raven


@hookimpl
def register_modules(register):
    register(Raven)
