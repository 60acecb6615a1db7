"""Entry point of the built-in talkinghead module (``modules.talkinghead.plugin``)."""
from greenroom import hookimpl

from .module import Talkinghead


@hookimpl
def register_modules(register):
    register(Talkinghead)
