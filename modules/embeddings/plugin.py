"""Entry point of the built-in embeddings module (``greenroom.modules`` group)."""
from greenroom import hookimpl

from .module import Embeddings


@hookimpl
def register_modules(register):
    register(Embeddings)
