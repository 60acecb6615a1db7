"""DuckDuckGo's no-JavaScript HTML endpoint, parsed with the standard library's HTML parser."""
from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

from pydantic import Field

from greenroom.module import SENSITIVE

from .engines import (Engine, EngineMalformed, EngineRateLimited, EngineSettings, Hit, Query,
                      raise_for_status, retry_after_s)
from .text import html_to_text

SAFESEARCH = {"off": "-2", "moderate": "-1", "strict": "1"}
BLOCKED_STATUSES = (202, 403, 418)  # DuckDuckGo's ways of saying "slow down" besides 429


class DuckDuckGoSettings(EngineSettings):
    url: str = Field("https://html.duckduckgo.com/html/", pattern=r"^https?://\S+$", json_schema_extra=SENSITIVE,
                     description="DuckDuckGo's HTML endpoint (the form is POSTed to it).")
    region: str = Field("", pattern=r"^([a-z]{2}-[a-z]{2})?$",
                        description="Region code (DuckDuckGo's 'kl'), e.g. 'us-en' or 'de-de'; empty: no region.")
    timeout_s: float = Field(8.0, gt=0, le=120, description="Give up on one answer after this many seconds.")
    min_interval_s: float = Field(2.0, ge=0, le=600,
                                  description="Polite spacing between two requests to this engine.")


@dataclass
class _Result:
    ad: bool
    href: str = ""
    title: list[str] = field(default_factory=list)
    snippet: list[str] = field(default_factory=list)


class ResultPageParser(HTMLParser):
    """Collects ``div.result`` blocks: the ``a.result__a`` title and link and the ``.result__snippet``.

    Also notices the results list itself, the "no results" block and the CAPTCHA ("anomaly") page,
    so that an unrecognised page is reported as malformed instead of as zero results.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.results: list[_Result] = []
        self.saw_list = False
        self.saw_no_results = False
        self.saw_captcha = False
        self._capture: tuple[str, str, int] | None = None  # (field, tag, nesting depth of that tag)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set((dict(attrs).get("class") or "").split())
        if self._capture is not None:
            name, ctag, depth = self._capture
            if tag == ctag:
                self._capture = (name, ctag, depth + 1)
            return
        self._notice(classes, dict(attrs).get("id"))
        if "result" in classes:
            self.results.append(_Result(ad="result--ad" in classes))
        elif self.results and "result__a" in classes and tag == "a":
            self.results[-1].href = dict(attrs).get("href") or ""
            self._capture = ("title", tag, 1)
        elif self.results and "result__snippet" in classes:
            self._capture = ("snippet", tag, 1)

    def _notice(self, classes: set[str], element_id: str | None) -> None:
        if element_id == "links" or "results" in classes:
            self.saw_list = True
        if "no-results" in classes or "result--no-result" in classes:
            self.saw_no_results = True
        if any(c.startswith("anomaly-modal") for c in classes) or "challenge-form" in classes:
            self.saw_captcha = True

    def handle_endtag(self, tag: str) -> None:
        if self._capture is not None and tag == self._capture[1]:
            name, ctag, depth = self._capture
            self._capture = None if depth <= 1 else (name, ctag, depth - 1)

    def handle_data(self, data: str) -> None:
        if self._capture is not None and self.results:
            getattr(self.results[-1], self._capture[0]).append(data)


def result_url(href: str) -> str:
    """The target of a result link: DuckDuckGo wraps it as ``//duckduckgo.com/l/?uddg=<url>``.

    Links to DuckDuckGo itself (ads, internal pages) give ''.
    """
    absolute = urljoin("https://html.duckduckgo.com/", href)
    parts = urlsplit(absolute)
    if parts.hostname and parts.hostname.endswith("duckduckgo.com"):
        if parts.path.startswith("/l/"):
            return parse_qs(parts.query).get("uddg", [""])[0]
        return ""
    return absolute


class DuckDuckGoEngine(Engine):
    name = "duckduckgo"
    description = "DuckDuckGo's HTML endpoint (no key; be gentle, it blocks fast clients with a CAPTCHA)."
    Settings = DuckDuckGoSettings
    settings: DuckDuckGoSettings

    def search(self, query: Query) -> list[Hit]:
        form = {"q": query.text, "b": "", "kp": SAFESEARCH[query.safesearch]}
        if self.settings.region:
            form["kl"] = self.settings.region
        headers = {"Accept": "text/html", "Referer": self.settings.url}
        fetched = self.http.request("POST", self.settings.url, data=form, headers=headers)
        if fetched.status in BLOCKED_STATUSES:
            raise EngineRateLimited(f"HTTP {fetched.status}: DuckDuckGo is refusing requests for now",
                                    retry_after=retry_after_s(fetched.headers))
        raise_for_status(fetched)
        return self.parse(fetched.text())

    def parse(self, page: str) -> list[Hit]:
        parser = ResultPageParser()
        parser.feed(page)
        parser.close()
        if parser.saw_captcha:
            raise EngineRateLimited("DuckDuckGo answered with a CAPTCHA page (too many requests)")
        hits = [Hit(title=html_to_text("".join(r.title)), url=result_url(r.href),
                    snippet=html_to_text("".join(r.snippet)), engine=self.name)
                for r in parser.results if not r.ad]
        hits = [h for h in hits if h.url]
        if not hits and not parser.saw_no_results and not parser.saw_list:
            raise EngineMalformed("page has no results list (DuckDuckGo may have changed its HTML)")
        if not hits and any(not r.ad for r in parser.results) and not parser.saw_no_results:
            raise EngineMalformed("result blocks without links (DuckDuckGo may have changed its HTML)")
        return hits
