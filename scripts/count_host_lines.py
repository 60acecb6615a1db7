"""Count the host's lines of code, without blank lines, comments and docstrings.

    python scripts/count_host_lines.py [--files]

The core is ``greenroom/*.py``, what a module author reads; issue 18 set its goal: at most 800 lines of
code. Each subpackage (``greenroom/server``: command line and serving, ``greenroom/web``: the host's own
routes and pages) is counted and printed too, with the total, so no line leaves the count by moving.
Every string that stands alone as a statement counts as documentation (module, class, function and
attribute docstrings).
"""
from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

HOST = Path(__file__).resolve().parent.parent / "greenroom"
SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
           tokenize.ENCODING, tokenize.ENDMARKER}


def code_lines(source: str) -> int:
    """Lines holding at least one token that is neither a comment nor part of a docstring."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            docs.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in SKIPPED:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


GOAL = 800


def count(folder: Path, label: str, files: bool) -> int:
    """Print and return the lines of code of ``folder/*.py`` (with ``files``, each file's too)."""
    paths = sorted(folder.glob("*.py"))
    total = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        total += code_lines(text)
        if files:
            print(f"{code_lines(text):5d} {len(text.splitlines()):5d}  {path.relative_to(HOST.parent)}")
    print(f"{label}: {total} lines of code in {len(paths)} files")
    return total


def main() -> int:
    files = "--files" in sys.argv
    core = count(HOST, f"host core (greenroom/*.py, goal: at most {GOAL})", files)
    total = core
    for sub in sorted(p for p in HOST.iterdir() if (p / "__init__.py").is_file()):
        total += count(sub, f"greenroom/{sub.name}", files)
    print(f"all of greenroom: {total} lines of code; the core is {core} (goal: at most {GOAL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
