"""The raven module: Raven's web API (Technologicat/raven, ``raven.client.api``) on top of Greenroom's modules.

It owns no model. Every route reaches another module through the typed services of the context (tts's
``Speech``, nlp's ``NaturalLanguage``) and answers 503 naming the module when that one is not loaded.
"""
from __future__ import annotations

from greenroom import Module

from .settings import RavenSettings


class Raven(Module):
    name = "raven"
    version = "0.1.0"
    description = "Raven's client API (natlang, tts with header timestamps, Raven's module names) over Greenroom."
    Settings = RavenSettings
    advertise_name = False
    """SillyTavern has no use for the name; Raven clients get their own list (see routes.raven_modules)."""
