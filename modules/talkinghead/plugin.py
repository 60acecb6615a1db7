"""Entry point of the built-in talkinghead module (``greenroom_modules.talkinghead.plugin``)."""
from greenroom import hookimpl

from .module import Talkinghead


@hookimpl
def register_modules(register):
    register(Talkinghead)
