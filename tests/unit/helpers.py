"""Shared test helpers: plan a goal in-process, run the CLI in-process."""

from __future__ import annotations

import json
from pathlib import Path

from planner.__main__ import main
from planner.compose import load
from planner.core import plan
from planner.probe import probe
from planner.tokens import token_counter


def make_plan(*overrides: str, base: Path | None = None):
    spec, _ = load(list(overrides))
    stats = probe(spec.data, base or Path.cwd(), token_counter(spec), lints=spec.knowledge.lints)
    return plan(spec, stats)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(capsys, *args: str) -> tuple[int, dict | None, str]:
    code, out, err = run_cli(capsys, *args, "dry_run=true", "report=json")
    return code, (json.loads(out) if out.strip() else None), err
