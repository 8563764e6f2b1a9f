"""validate_data counts usable, unique examples as the planner did (schemas.scan.SplitScan on both sides), and
reports empties, duplicates, near duplicates and validation records that repeat training ones with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.helpers import read_json, run_stage, write_bundle

pytestmark = pytest.mark.runtime


def _pc(i: int) -> dict:
    return {"prompt": f"Where is my order {1000 + i}?\n", "completion": f"Dear customer, order {1000 + i} ships today."}


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_validate_data_counts_as_the_plan_did(tmp_path, tiny_dir):
    data = tmp_path / "d"
    rows = [_pc(i) for i in range(150)]
    rows += [_pc(i) for i in range(30)]  # exact duplicates
    rows += [{"prompt": "", "completion": "Dear customer."}] * 5  # empty prompts
    rows += [{k: v.upper() for k, v in _pc(i).items()} for i in range(3)]  # near duplicates
    _write(data / "training" / "t.jsonl", rows)
    _write(data / "validation" / "v.jsonl", [_pc(2000 + i) for i in range(18)] + [_pc(5), _pc(6)])  # 2 trained on
    bundle = write_bundle(tmp_path / "b", "+goal=tone", "method=lora", f"data.path={data}")
    planned = read_json(bundle / "plan.json")["data_stats"]["training"]
    assert (planned["records"], planned["usable"], planned["unique"]) == (188, 183, 153)

    assert run_stage(bundle, "validate_data") == 0  # warnings only
    report = read_json(bundle / "run/validate_data/report.json")
    split = report["splits"]["training"]
    for key in ("records", "usable", "unique", "empty", "duplicates", "near_duplicates", "near_duplicate_rate"):
        assert split[key] == planned[key], key
    warnings = "\n".join(report["warnings"])
    assert "30 duplicate records in training/: training/t.jsonl:151: duplicate of training/t.jsonl:1" in warnings
    assert "5 records with empty fields in training/: training/t.jsonl:181: `prompt` is empty" in warnings
    assert "3 near duplicates (case, punctuation or spacing aside) in training/: training/t.jsonl:186" in warnings
    planned_validation = read_json(bundle / "plan.json")["data_stats"]["validation"]
    assert report["splits"]["validation"]["in_training"] == planned_validation["in_training"] == 2
    assert (
        "2 records that repeat a training record in validation/: validation/v.jsonl:19: repeats training record "
        "training/t.jsonl:6" in warnings
    )
