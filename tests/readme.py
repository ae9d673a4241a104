"""The README's code blocks, each with the role an HTML comment above it gives it
(`<!-- readme: ROLE -->`): what tests/test_readme.py runs and what .ci/run runs.

Roles: `start` (the install-and-start command, run by .ci/run in a brand-new venv), `test` (the
whole suite's command, run first by .ci/run), `file` (a file whose first line `# NAME` names it),
`serve` (starts the server the next `run` blocks talk to), `run` (commands that must succeed),
`not run: WHY` (a command these tests cannot run here, and what checks it instead).

`python3 tests/readme.py ROLE` prints the first block of that role (stdlib only: .ci/run uses
it before anything is installed).
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme: (?P<role>[^>]*?) -->\n[ \t]*)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S
)


@dataclass(frozen=True)
class Block:
    role: str
    lang: str
    code: str
    line: int

    @property
    def name(self) -> str:
        """A `file` block's file name, from its first line (`# mytasks.py`)."""
        return self.code.splitlines()[0].removeprefix("# ").strip()


def blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    return [
        Block(m["role"] or "", m["lang"], _dedent(m["code"]), text.count("\n", 0, m.start()) + 1)
        for m in BLOCK.finditer(text)
    ]


def _dedent(code: str) -> str:
    """A block inside a list item is indented with it."""
    return textwrap.dedent(code)


def first(role: str) -> Block:
    return next(block for block in blocks() if block.role == role)


if __name__ == "__main__":
    sys.stdout.write(first(sys.argv[1]).code)
