"""HTML fragments from engines (``<b>`` highlights, entities, stray scripts) to one line of plain text.

Snippets end up in ``results`` joined by newlines, which SillyTavern splits on, so a snippet must
never contain a line break or control character.
"""
from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

_SKIPPED = {"script", "style", "noscript", "template", "head", "svg"}
_INLINE = {"a", "abbr", "b", "code", "em", "i", "mark", "small", "span", "strong", "sub", "sup", "u"}
_SPACES = re.compile(r"\s+")
ELLIPSIS = "\u2026"
_KEPT = "\t\n\r\u200d"  # whitespace becomes spaces below; the zero-width joiner holds emoji together


class _TextCollector(HTMLParser):
    """Keeps the text nodes outside script-like elements; entities are decoded by the parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip_depth += 1
        if tag not in _INLINE:  # block elements and line breaks separate words
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)


def one_line(text: str) -> str:
    """Collapse every run of whitespace (line breaks included) to one space; drop control characters."""
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf") or c in _KEPT)
    return _SPACES.sub(" ", text).strip()


def html_to_text(fragment: str) -> str:
    """Plain, single-line text of an HTML fragment (plain text passes through, entities decoded)."""
    if "<" not in fragment and "&" not in fragment:
        return one_line(fragment)
    collector = _TextCollector()
    collector.feed(fragment)
    collector.close()
    return one_line("".join(collector.parts))


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary where one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + ELLIPSIS


def clean_snippet(fragment: str, limit: int) -> str:
    return truncate(html_to_text(fragment), limit)
