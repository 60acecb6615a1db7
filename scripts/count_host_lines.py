"""Count the host's lines of code: greenroom/*.py without blank lines, comments and docstrings.

    python scripts/count_host_lines.py [--files]

Every string that stands alone as a statement counts as documentation (module, class, function and
attribute docstrings). Issue 18 set the goal: at most 800 lines of code.
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


def main() -> int:
    total = 0
    for path in sorted(HOST.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        count = code_lines(text)
        total += count
        if "--files" in sys.argv:
            print(f"{count:5d} {len(text.splitlines()):5d}  {path.name}")
    print(f"host core: {total} lines of code in {len(list(HOST.glob('*.py')))} files (goal: at most 800)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
