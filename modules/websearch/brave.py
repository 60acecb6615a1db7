"""Brave Search's web API, for users with a subscription token (the free plan allows 1 request/s)."""
from __future__ import annotations

import os

from pydantic import Field, SecretStr

from greenroom.module import SENSITIVE

from .engines import (Engine, EngineError, EngineSettings, Hit, Query, json_object, raise_for_status,
                      text_field)
from .text import html_to_text

KEY_ENV = "GREENROOM_BRAVE_API_KEY"
PAGE_SIZE = 20  # the API's maximum 'count'


class BraveSettings(EngineSettings):
    url: str = Field("https://api.search.brave.com/res/v1/web/search", pattern=r"^https?://\S+$",
                     json_schema_extra=SENSITIVE,
                     description="The web search endpoint of the Brave Search API.")
    api_key: SecretStr = Field("", validate_default=True, json_schema_extra=SENSITIVE,
                               description=f"Subscription token (X-Subscription-Token). Empty: read {KEY_ENV}; "
                                           "if that is unset too, the engine is off.")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Give up on one answer after this many seconds.")


class BraveEngine(Engine):
    name = "brave"
    description = "The Brave Search API (needs a subscription token)."
    Settings = BraveSettings
    settings: BraveSettings

    def key(self) -> str:
        return self.settings.api_key.get_secret_value() or os.environ.get(KEY_ENV, "")

    def problem(self) -> str | None:
        return None if self.key() else f"no API key (set brave_api_key or {KEY_ENV})"

    def search(self, query: Query) -> list[Hit]:
        params = {"q": query.text, "count": str(PAGE_SIZE), "safesearch": query.safesearch}
        if query.language:
            params["search_lang"] = query.language.split("-")[0].lower()
        headers = {"Accept": "application/json", "X-Subscription-Token": self.key()}
        fetched = self.http.request("GET", self.settings.url, params=params, headers=headers)
        if fetched.status in (401, 403, 422):
            raise EngineError(f"HTTP {fetched.status}: the API refused the request ({self._error_code(fetched)})",
                              "config")
        raise_for_status(fetched)
        doc = json_object(fetched)
        web = doc.get("web", {})
        results = web.get("results", []) if isinstance(web, dict) else None
        if not isinstance(results, list):
            raise EngineError("answer's 'web.results' is not a list", "malformed")
        return [self._hit(r) for r in results if isinstance(r, dict) and text_field(r, "url")]

    def _hit(self, item: dict) -> Hit:
        return Hit(title=html_to_text(text_field(item, "title")), url=text_field(item, "url"),
                   snippet=html_to_text(text_field(item, "description")), engine=self.name)

    @staticmethod
    def _error_code(fetched) -> str:
        """The API's error code (e.g. SUBSCRIPTION_TOKEN_INVALID) when the body has one."""
        try:
            error = fetched.json().get("error", {})
            return str(error.get("code") or "no error code")[:80]
        except (EngineError, AttributeError):
            return "no error code"
