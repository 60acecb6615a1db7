"""Entry point of the built-in ``tts`` module."""
from greenroom import hookimpl

from .module import TTSModule


@hookimpl
def register_modules(register):
    register(TTSModule)
