"""The model names of OpenAI's /v1/embeddings: which role a ``model`` means, and what GET /v1/models lists.

A role answers to its own name (a Greenroom extension), its model's full name
(``sentence-transformers/all-MiniLM-L6-v2``), the short name (``all-MiniLM-L6-v2``, any case) and the
aliases of the ``model_aliases`` setting (OpenAI's own model names by default).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from greenroom.web.openai_models import created_time, model_not_found, offer_models

from .models import resolve_model

if TYPE_CHECKING:
    from .module import Embeddings
    from .settings import EmbeddingsSettings


def short_name(spec: str) -> str:
    """``org/name`` -> ``name``; a local path -> its last folder."""
    return spec.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]


def model_names(spec: str) -> list[str]:
    """The names a served model answers to (full name first)."""
    return list(dict.fromkeys((spec, short_name(spec))))


def openai_role(settings: "EmbeddingsSettings", model: str) -> str:
    """The role ``model`` names; 404 ``model_not_found`` when none."""
    if model in settings.roles:
        return model
    wanted = model.casefold()
    for alias, role in settings.model_aliases.items():
        if alias.casefold() == wanted:
            return role
    for role, spec in settings.roles.items():
        if wanted in {n.casefold() for n in model_names(spec)} or model == resolve_model(spec):
            return role
    raise model_not_found(model, offered(settings))


def offered(settings: "EmbeddingsSettings") -> Iterator[str]:
    """The names /v1/models lists: each served model's names, then the aliases (roles are not models)."""
    for spec in dict.fromkeys(settings.roles.values()):
        yield from model_names(spec)
    yield from settings.model_aliases


def offer(module: "Embeddings") -> None:
    """List the served models and their aliases in GET /v1/models while the module is loaded, each with
    its model's owner (the hub organisation, or 'greenroom' for a local folder) and the time its files
    were written."""
    for spec in dict.fromkeys(module.settings.roles.values()):
        owner = spec.split("/")[0] if spec.count("/") == 1 and not spec.startswith((".", "/")) else "greenroom"
        offer_models(module.context, lambda spec=spec: _names_now(module, spec), owned_by=owner,
                     created=created_time(resolve_model(spec)))


def _names_now(module: "Embeddings", spec: str) -> list[str]:
    s = module.settings
    if not module.context.is_loaded(module.name):
        return []
    return model_names(spec) + [alias for alias, role in s.model_aliases.items() if s.roles.get(role) == spec]
