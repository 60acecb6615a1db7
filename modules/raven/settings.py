"""Settings of the raven module."""
from __future__ import annotations

from pydantic import Field

from greenroom import ModuleSettings


class RavenSettings(ModuleSettings):
    client_user_agents: list[str] = Field(
        ["python-requests/"], description="User-Agent prefixes that mark a Raven client: GET /api/modules adds "
                                          "Raven's module names (natlang, tts, avatar) for them only. SillyTavern "
                                          "never sends these, so its XTTS provider never sees a plain 'tts'.")
