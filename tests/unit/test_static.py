"""The tree stays clean: ruff (lint and format) and mypy on schemas/ planner/ runtime/, as configured in
pyproject.toml. The test extra installs both; outside CI a missing tool skips, in CI it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "planner", "runtime")


def _tool(name: str) -> list[str]:
    found = shutil.which(name) or (
        str(Path(sys.executable).with_name(name)) if Path(sys.executable).with_name(name).exists() else None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [found]


@pytest.mark.parametrize("args", [("check",), ("format", "--check")], ids=["lint", "format"])
def test_ruff_is_clean(args):
    proc = subprocess.run([*_tool("ruff"), *args, *PACKAGES], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean():
    proc = subprocess.run([*_tool("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
