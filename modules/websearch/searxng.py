"""SearXNG through its JSON API: the most robust choice for people who run their own instance."""
from __future__ import annotations

from pydantic import Field

from greenroom.module import SENSITIVE

from .engines import Engine, EngineError, EngineSettings, Hit, Query, json_object, raise_for_status, text_field
from .text import one_line

SAFESEARCH = {"off": "0", "moderate": "1", "strict": "2"}


class SearxngSettings(EngineSettings):
    url: str = Field("", pattern=r"^(https?://\S+)?$", json_schema_extra=SENSITIVE,
                     description="Base URL of a SearXNG instance with the JSON format enabled, e.g. "
                                 "'http://127.0.0.1:8888'. Empty: the engine is off.")
    engines: str = Field("", max_length=500,
                         description="Comma-separated SearXNG engines to ask (e.g. 'google,bing'); "
                                     "empty: the instance's defaults.")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Give up on one answer after this many seconds.")
    min_interval_s: float = Field(0.0, ge=0, le=600,
                                  description="Polite spacing between two requests to this engine.")


class SearxngEngine(Engine):
    name = "searxng"
    description = "A SearXNG instance (JSON API, POST so queries stay out of its access log)."
    Settings = SearxngSettings
    settings: SearxngSettings

    def problem(self) -> str | None:
        return None if self.settings.url else "no instance configured (set searxng_url)"

    def endpoint(self) -> str:
        base = self.settings.url.rstrip("/")
        return base if base.endswith("/search") else base + "/search"

    def search(self, query: Query) -> list[Hit]:
        form = {"q": query.text, "format": "json", "pageno": "1", "safesearch": SAFESEARCH[query.safesearch]}
        if query.language:
            form["language"] = query.language
        if self.settings.engines:
            form["engines"] = self.settings.engines
        fetched = self.http.request("POST", self.endpoint(), data=form, headers={"Accept": "application/json"})
        if fetched.status == 403:
            raise EngineError("HTTP 403: the instance refuses format=json; add 'json' to search.formats in its "
                              "settings.yml", "config")
        raise_for_status(fetched)
        doc = json_object(fetched)
        results = doc.get("results")
        if not isinstance(results, list):
            raise EngineError("answer has no 'results' list", "malformed")
        hits = [self._hit(r) for r in results if isinstance(r, dict)]
        hits = [h for h in hits if h.url]
        unresponsive = doc.get("unresponsive_engines")
        if not hits and isinstance(unresponsive, list) and unresponsive:
            names = ", ".join(str(u[0] if isinstance(u, list) and u else u) for u in unresponsive[:5])
            raise EngineError(f"no results and the instance's own engines failed ({names})", "http")
        return hits

    def _hit(self, item: dict) -> Hit:
        """SearXNG's titles and snippets are plain text: 'std::vector<int>' and '&lt;' are meant literally."""
        return Hit(title=one_line(text_field(item, "title")), url=text_field(item, "url"),
                   snippet=one_line(text_field(item, "content")), engine=self.name)
