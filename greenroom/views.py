"""Views written at module level: plain functions that take their module as the first argument.

A module's ``routes.py`` declares ``routes = Routes()`` and decorates its views with ``@routes.api(...)``,
which takes the arguments of :meth:`ApiBlueprint.api`::

    routes = Routes()

    @routes.api("/api/echo/voices", summary="Voices")
    def voices(module: "Echo"):
        return jsonify(module.voices())

:meth:`Module.blueprint` calls ``routes.blueprint(module)``: a fresh blueprint per app (the host adds its
guards to it) whose every view runs as ``view(module, **kwargs)``. So no view is a closure, each reads and
tests alone, and ``routes.py`` needs ``module.py`` for type hints only: there is no import loop.
Blueprint hooks are declared the same way, ``@routes.hook("after_request")``, and also get the module first.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .api import ApiBlueprint

if TYPE_CHECKING:
    from .module import Module


class Routes:
    """The views of one module (plus those of the ``include``d collections, registered after its own)."""

    def __init__(self, include: Iterable["Routes"] = ()) -> None:
        self.views: list[tuple[str, Iterable[str], dict[str, Any], Callable[..., Any]]] = []
        self.hooks: list[tuple[str, Callable[..., Any]]] = []
        self.include = tuple(include)

    def api(self, rule: str, methods: Iterable[str] = ("GET",), **options: Any) -> Callable:
        """Record a view for :meth:`ApiBlueprint.api`; the function itself is returned unchanged."""
        def record(view: Callable[..., Any]) -> Callable[..., Any]:
            self.views.append((rule, methods, options, view))
            return view
        return record

    def hook(self, kind: str) -> Callable:
        """Record a blueprint hook (``after_request``, ``before_app_request``...), called as ``hook(module, ...)``."""
        def record(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.hooks.append((kind, fn))
            return fn
        return record

    def blueprint(self, module: "Module") -> ApiBlueprint:
        """A new blueprint named after the module, its views bound to ``module``."""
        bp = ApiBlueprint(module.name, type(module).__module__)
        self.register(bp, module)
        return bp

    def register(self, bp: ApiBlueprint, module: "Module") -> None:
        for rule, methods, options, view in self.views:
            bound = functools.update_wrapper(functools.partial(view, module), view)
            bp.api(rule, methods, **options)(bound)
        for kind, fn in self.hooks:
            getattr(bp, kind)(functools.partial(fn, module))
        for routes in self.include:
            routes.register(bp, module)
