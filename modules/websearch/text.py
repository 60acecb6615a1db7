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


# -- whole pages (webfetch) -------------------------------------------------------------------------

_PAGE_SKIPPED = _SKIPPED | {"nav", "footer", "aside", "form", "button", "select", "iframe", "object", "canvas"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCKS = {"p", "div", "section", "article", "main", "header", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr",
           "blockquote", "pre", "figure", "figcaption", "hr", "address", "details", "summary", *_HEADINGS}
_MAIN = {"main", "article"}
MIN_MAIN_CHARS = 200
"""A page's <main> or <article> stands for the whole page when it holds at least this much text."""


class _PageCollector(HTMLParser):
    """Blocks of text (paragraphs, headings, list items) in document order, each marked with its kind
    and whether it sits inside <main> or <article>; the <title> separately."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        self.blocks: list[tuple[str, str, bool]] = []  # (kind: "p", "li" or "h1".."h6", text, in main)
        self._parts: list[str] = []
        self._kind = "p"
        self._skip_depth = self._main_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _PAGE_SKIPPED:
            self._skip_depth += 1
        if tag in _BLOCKS or tag == "br":
            self._flush()
            self._kind = tag if tag in _HEADINGS or tag == "li" else "p"
        if tag in _MAIN:
            self._main_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _PAGE_SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        if tag in _BLOCKS:
            self._flush()
            self._kind = "p"
        if tag in _MAIN:
            self._main_depth = max(0, self._main_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip_depth:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        text = one_line("".join(self._parts))
        self._parts = []
        if text:
            self.blocks.append((self._kind, text, self._main_depth > 0))


def readable_page(html: str, markdown: bool) -> tuple[str | None, str]:
    """The title and main text of an HTML page: scripts, styles, navigation, footers, asides and forms
    left out; the <main> or <article> part alone when it holds enough text. Blocks are separated by a
    blank line (list items by a line break); with ``markdown``, headings get ``#`` marks and list items
    ``- ``. Control and invisible format characters are dropped, as in snippets."""
    collector = _PageCollector()
    collector.feed(html)
    collector.close()
    blocks = collector.blocks
    main = [b for b in blocks if b[2]]
    if sum(len(text) for _, text, _ in main) >= MIN_MAIN_CHARS:
        blocks = main
    lines: list[str] = []
    previous = ""
    for kind, text, _ in blocks:
        if markdown and kind in _HEADINGS:
            text = "#" * _HEADINGS[kind] + " " + text
        elif markdown and kind == "li":
            text = "- " + text
        if lines:
            lines.append("\n" if kind == "li" and previous == "li" else "\n\n")
        lines.append(text)
        previous = kind
    title = one_line("".join(collector.title_parts)) or next((t for k, t, _ in blocks if k == "h1"), None)
    return title or None, "".join(lines)


def readable_text(text: str) -> str:
    """Plain text cleaned like a page: each line's whitespace collapsed and control characters dropped,
    runs of blank lines reduced to one."""
    paragraphs = [" ".join(one_line(line) for line in chunk.splitlines()).strip()
                  for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))]
    return "\n\n".join(p for p in paragraphs if p)
