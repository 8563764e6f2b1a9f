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


def test_own_configs_example_runs(tmp_path):
    """The "Your own configs" block, run as written in an empty folder: both commands plan the team's goal on the
    team's inventory without touching the package's conf/."""
    import os
    import subprocess
    import sys

    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- own-configs -->", 1)[1].split("<!-- /own-configs -->", 1)[0]
    script = "\n".join(line for line in block.splitlines() if not line.startswith("```"))
    assert "hydra.searchpath" in script and "--config-dir" in script
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("goal refund_tone: FEASIBLE") == 2
    assert proc.stdout.count("inventory our-a100s (1 x 4 A100 SXM 80GB)") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team-conf"]
