"""Imports fine, then raises inside its hook."""
from greenroom import hookimpl


@hookimpl
def register_modules(register):
    raise RuntimeError("this plugin is broken on purpose")
