"""Entry point ``greenroom_modules.imagefx.plugin``: registers the imagefx module with the host."""
from greenroom import hookimpl

from .module import ImageFx


@hookimpl
def register_modules(register):
    register(ImageFx)
