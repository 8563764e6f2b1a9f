"""train (method kto) on tiny-llama (CPU): KTOTrainer from the plan, on unpaired feedback and on preference pairs
(each pair one desirable and one undesirable answer)."""

from __future__ import annotations

import pytest

from tests.runtime.helpers import read_json as _json
from tests.runtime.helpers import read_metrics as _metrics
from tests.runtime.helpers import run_stage as _run
from tests.runtime.helpers import write_bundle
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.runtime

KTO_KEYS = ("kl", "rewards/chosen", "rewards/rejected", "rewards/margins")


def test_feedback_rows_unpair_preference_pairs_and_skip_incomplete_records():
    from runtime.recipes.kto import feedback_rows

    fmt = (
        make_plan("+goal=safety_alignment", "data=safety_feedback", "model=tiny-llama", "inventory=local")
        .stage("train")
        .prompt
    )
    assert fmt is not None
    records = [
        {"prompt": "Q?", "completion": "good", "label": True},
        {"prompt": "Q?", "completion": "bad", "label": False},
        {"prompt": "P?", "chosen": "yes", "rejected": "no"},
        {"prompt": "R?", "chosen": "yes"},  # half a pair
        {"prompt": "", "completion": "x", "label": True},
    ]
    rows, skipped = feedback_rows(fmt, records)
    assert skipped == 2
    assert [(r["prompt"], r["completion"], r["label"]) for r in rows] == [
        ("Q?", " good", True),
        ("Q?", " bad", False),
        ("P?", " yes", True),
        ("P?", " no", False),
    ]


@pytest.mark.parametrize("data", ["data=safety_feedback", "data=safety_alignment"], ids=["unpaired", "pairs"])
def test_kto_trains_from_the_plan_and_logs_its_metrics(tmp_path, tiny_dir, data):
    bundle = write_bundle(
        tmp_path,
        "+goal=safety_alignment",
        data,
        "method=kto",
        f"++method.sft_base={tiny_dir}",
        "++method.max_steps=4",
        "method.learning_rate=2e-5",
    )
    assert _run(bundle, "train") == 0
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["method"] == "kto" and status["steps_completed"] == 4
    assert status["reference"] == "copy"
    assert (bundle / "run/train/model/model.safetensors").is_file()
    steps = [r for r in _metrics(bundle) if r["kind"] == "step"]
    assert steps and all(k in steps[-1] for k in KTO_KEYS)
