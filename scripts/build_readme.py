"""Splice each module's README into the top README between the MODULES markers.

Module documentation lives beside its code (modules/<name>/README.md); the top README carries all of it,
with headings demoted one level and relative links rewritten to work from the repository root.

    .venv/bin/python scripts/build_readme.py
"""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["talkinghead", "postprocessor", "imagefx", "tts", "stt", "classify", "embeddings", "nlp", "websearch"]
EXTRA_DOCS = {"talkinghead": ["docs/webui.md", "docs/pose-editor.md"]}
START, END = "<!-- MODULES -->", "<!-- /MODULES -->"
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def rebase_links(text: str, folder: str) -> str:
    """Relative links in a file under ``folder`` rewritten relative to the repository root."""

    def fix(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"^(?:[a-z]+:|#|/)", target):
            return match.group(0)
        return match.group(1) + posixpath.normpath(posixpath.join(folder, target)) + match.group(3)

    return LINK.sub(fix, text)


def demote(text: str) -> str:
    """One more '#' on every heading outside code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and line.startswith("#") else line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lstrip("#").strip().lower())
    return text.replace(" ", "-")


def module_docs() -> str:
    parts = ["## Modules\n", "| module | documentation |", "|---|---|"]
    bodies = []
    for name in ORDER:
        files = [f"modules/{name}/README.md", *EXTRA_DOCS.get(name, [])]
        present = [f for f in files if (ROOT / f).exists()]
        if not present:
            continue
        title = (ROOT / present[0]).read_text(encoding="utf-8").strip().splitlines()[0]
        parts.append(f"| `{name}` | [{title.lstrip('# ')}](#{slug(title)}) · source: [{present[0]}]({present[0]}) |")
        for f in present:
            text = (ROOT / f).read_text(encoding="utf-8").strip()
            bodies.append(demote(rebase_links(text, posixpath.dirname(f))))
    return "\n".join(parts) + "\n\n" + "\n\n".join(bodies) + "\n"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    if END not in text:
        text = text.replace(START, f"{START}\n{END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{module_docs()}{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    main()
