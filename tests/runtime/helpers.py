"""What the runtime tests share: a bundle folder with plan.json for tiny-llama on this CPU, running one
stage of it in process, and reading what the stage wrote."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.__main__ import main as runtime_main
from tests.unit.helpers import make_plan

TINY = ("model=tiny-llama", "inventory=local")


def write_bundle(root: Path, *overrides: str) -> Path:
    """A bundle folder holding plan.json of `overrides` + tiny-llama on the local inventory."""
    plan = make_plan(*overrides, *TINY)
    bundle = root / plan.name
    bundle.mkdir(parents=True)
    (bundle / "plan.json").write_text(plan.model_dump_json(indent=2))
    return bundle


def run_stage(bundle: Path, stage: str) -> int:
    return runtime_main([str(bundle / "plan.json"), "--stage", stage])


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def read_metrics(bundle: Path, stage: str = "train") -> list[dict]:
    return [json.loads(line) for line in (bundle / f"run/{stage}/metrics.jsonl").read_text().splitlines()]
