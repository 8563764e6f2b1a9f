"""Alpaca and ShareGPT data in JSONL, CSV and Parquet files through the runtime: validate_data counts as the plan
did, and the SFT recipe's rows are the records converted once (schemas.records.to_shape)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from runtime.data import splits
from runtime.recipes.sft import rows
from schemas.plan import Plan, PromptFormat
from tests.runtime.helpers import read_json, run_stage, write_bundle

pytestmark = pytest.mark.runtime

PLAIN = PromptFormat(kind="plain", template="{prompt} {completion}")


def _alpaca(i: int) -> dict:
    return {"instruction": "Reply kindly.", "input": f"Order {10000 + i} is late.", "output": f"Sorry, order {i}."}


def test_alpaca_in_jsonl_csv_and_parquet_validates_as_planned_and_trains_as_prompt_completion(tmp_path, tiny_dir):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = tmp_path / "d"
    (data / "training").mkdir(parents=True)
    (data / "validation").mkdir()
    (data / "training" / "a.jsonl").write_text("".join(json.dumps(_alpaca(i)) + "\n" for i in range(100)))
    csv_rows = "".join(f"Reply kindly.,Order {20000 + i} is late.,\"Sorry, order {i}.\"\n" for i in range(40))
    (data / "training" / "b.csv").write_text("instruction,input,output\n" + csv_rows + "Reply kindly.,no output\n")
    buf = io.BytesIO()
    pq.write_table(pa.table({"instruction": ["Say hi."] * 20, "output": [f"Hi {i}." for i in range(20)]}), buf)
    (data / "training" / "c.parquet").write_bytes(buf.getvalue())
    (data / "validation" / "v.jsonl").write_text("".join(json.dumps(_alpaca(500 + i)) + "\n" for i in range(20)))
    bundle = write_bundle(tmp_path / "b", "+goal=tone", "method=lora", f"data.path={data}", "data.format=alpaca")
    planned = read_json(bundle / "plan.json")["data_stats"]["training"]
    assert (planned["records"], planned["invalid_total"]) == (160, 1)

    assert run_stage(bundle, "validate_data") == 1  # the CSV row without an output is an error
    report = read_json(bundle / "run/validate_data/report.json")
    split = report["splits"]["training"]
    assert (split["records"], split["usable"], split["unique"]) == (160, 160, 160)
    assert split["invalid"] == ["training/b.csv:42: missing field output"]

    plan = Plan.model_validate(read_json(bundle / "plan.json"))
    stage_data = plan.stage("train").data
    assert stage_data is not None
    train, validation = splits(stage_data)
    assert (len(train), len(validation)) == (161, 20)
    trl_rows, skipped = rows(stage_data, PLAIN, train)
    assert (len(trl_rows), skipped) == (160, 1)
    assert trl_rows[0] == {"prompt": "Reply kindly.\n\nOrder 10000 is late.", "completion": " Sorry, order 0."}
    assert trl_rows[-1] == {"prompt": "Say hi.", "completion": " Hi 19."}


def test_sharegpt_trains_as_messages(tmp_path):
    from planner.compose import load
    from planner.core import plan, stage_data
    from planner.probe import probe
    from planner.tokens import token_counter

    spec, _ = load(["+goal=tone", "data=support_sharegpt"])
    stats = probe(spec.data, Path.cwd(), token_counter(spec))
    data = stage_data(spec, stats, seed=0)
    assert data is not None and plan(spec, stats).decision.method == "lora"
    train, _ = splits(data)
    trl_rows, skipped = rows(data, PLAIN, train)
    assert (len(trl_rows), skipped) == (40, 0)
    assert trl_rows[0]["prompt"].startswith("system: Answer support questions")
    assert "\nuser: " in trl_rows[0]["prompt"]
    assert trl_rows[0]["completion"].startswith(" Answer: ")
