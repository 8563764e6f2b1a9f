"""The README's usage examples run as written (planning only: dry_run, nothing launched) and exit as they say:
0, or 1 where the comment says the plan is not feasible."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.unit.helpers import run_cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _usage() -> list[tuple[list[str], int]]:
    block = README.read_text(encoding="utf-8").split("## Usage", 1)[1].split("```", 2)[1]
    examples = []
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        if not command.strip().startswith("python -m planner"):
            continue
        args = shlex.split(command)[3:]
        args = [a for a in args if not re.match(r"^(launch|dry_run|report|out_dir)=", a)]
        examples.append((args, 1 if "NOT feasible" in comment else 0))
    return examples


EXAMPLES = _usage()


def test_the_usage_block_was_found():
    assert len(EXAMPLES) >= 5 and any(code == 1 for _, code in EXAMPLES)


@pytest.mark.parametrize("args, code", EXAMPLES, ids=[" ".join(a) or "plain" for a, _ in EXAMPLES])
def test_usage_example_exits_as_the_readme_says(capsys, args, code):
    got, out, err = run_cli(capsys, *args, *([] if "--help" in args else ["dry_run=true"]))
    assert got == code, err[-2000:]
    assert out.strip()
