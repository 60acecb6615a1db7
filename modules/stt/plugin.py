"""Entry point of the built-in ``stt`` module (``greenroom_modules.stt.plugin``)."""
from greenroom import hookimpl

from .module import STTModule


@hookimpl
def register_modules(register):
    register(STTModule)
