"""Loss-curve diagnostics and the gate's verdict on synthetic inputs (no torch)."""

from __future__ import annotations

import json
import math

from runtime.gate.verdict import OVERFIT_FIX, curves, diagnose, judge


def _records(train: list[float], val: list[float], steps_per_epoch: int = 10) -> list[dict]:
    """Step records for the train curve, one epoch record with val_loss every steps_per_epoch."""
    out = []
    for i, loss in enumerate(train, 1):
        out.append({"kind": "step", "step": i, "epoch": i / steps_per_epoch, "train_loss": loss,
                    "val_loss": None, "learning_rate": 1e-4})
        if i % steps_per_epoch == 0 and i // steps_per_epoch - 1 < len(val):
            out.append({"kind": "epoch", "step": i, "epoch": i // steps_per_epoch, "train_loss": loss,
                        "val_loss": val[i // steps_per_epoch - 1]})
    return out


def _codes(diags: list[dict], severity: str | None = None) -> set[str]:
    return {d["code"] for d in diags if severity is None or d["severity"] == severity}


def test_healthy_curves_have_no_errors():
    train = [3.0 - 0.04 * i for i in range(60)]
    diags = diagnose(_records(train, [2.9, 2.5, 2.2, 2.0, 1.95, 1.9]), window=3)
    assert _codes(diags, "error") == set()
    assert {"train-converging", "val"} <= _codes(diags, "info")


def test_overfit_val_rises_for_the_window_while_train_falls():
    train = [3.0 - 0.04 * i for i in range(70)]
    val = [2.5, 2.0, 1.8, 1.9, 2.0, 2.2, 2.4]
    diags = diagnose(_records(train, val), window=3)
    over = [d for d in diags if d["code"] == "overfit"]
    assert len(over) == 1 and over[0]["severity"] == "error"
    assert over[0]["fix"] == OVERFIT_FIX
    assert OVERFIT_FIX == "learning rate too high or adapter overfit: try lr 5e-5 and a smaller adapter_dim"
    assert "step 30 -> 60" in over[0]["message"] and "best val loss 1.8000 at step 30" in over[0]["message"]


def test_two_rises_do_not_trip_a_window_of_three():
    train = [3.0 - 0.04 * i for i in range(50)]
    diags = diagnose(_records(train, [2.5, 2.0, 2.1, 2.2, 1.9]), window=3)
    assert "overfit" not in _codes(diags)
    assert "overfit" in _codes(diagnose(_records(train, [2.5, 2.0, 2.1, 2.2, 1.9]), window=2))


def test_val_rising_while_train_rises_is_not_overfit_but_divergence():
    train = [2.0 + 0.05 * i for i in range(50)]
    diags = diagnose(_records(train, [2.0, 2.2, 2.4, 2.6, 2.8]), window=3)
    assert "overfit" not in _codes(diags)
    assert "diverged" in _codes(diags, "error")


def test_nan_loss_is_an_error_with_its_step():
    train = [3.0, 2.5, 2.0, float("nan"), float("nan")]
    records = _records(train, [], steps_per_epoch=100)
    # NaN survives the JSON round trip metrics.jsonl goes through
    records = [json.loads(json.dumps(r)) for r in records]
    diags = diagnose(records)
    nan = [d for d in diags if d["code"] == "nan-loss"]
    assert nan and nan[0]["step"] == 4 and nan[0]["severity"] == "error"


def test_flat_curve_did_not_converge():
    diags = diagnose(_records([2.0 + 0.001 * math.sin(i) for i in range(40)], [2.0, 2.0, 2.0, 2.0]))
    assert "no-convergence" in _codes(diags, "error")


def test_no_records_and_few_points():
    assert _codes(diagnose([])) == {"no-metrics"}
    diags = diagnose([{"kind": "epoch", "step": 5, "epoch": 1, "train_loss": 2.0, "val_loss": 2.1}])
    assert "few-points" in _codes(diags, "warning") and not _codes(diags, "error")


def test_grpo_skips_the_convergence_check():
    diags = diagnose(_records([0.0, 0.01, -0.01, 0.0] * 5, []), method="grpo")
    assert not _codes(diags, "error")


def test_curves_prefer_step_records_and_merge_val_from_any_kind():
    records = [{"kind": "step", "step": 1, "train_loss": 3.0}, {"kind": "step", "step": 2, "train_loss": 2.0,
               "val_loss": 2.5}, {"kind": "epoch", "step": 4, "train_loss": 2.4, "val_loss": 2.2}]
    train, val = curves(records)
    assert train == [(1, 3.0), (2, 2.0)]
    assert val == [(2, 2.5), (4, 2.2)]


def _scores(task, general, plan_id="p1", n=50):
    return {"plan_id": plan_id, "metric": "rouge_l", "task_score": task, "general_score": general,
            "n_examples": n, "general_benchmark": "builtin:general"}


def _judge(baseline, tuned, records, target=0.6, threshold=2.0, method="lora"):
    return judge(plan_id="p1", metric="rouge_l", target=target, declared_baseline=0.42, threshold=threshold,
                 window=3, baseline=baseline, tuned=tuned, records=records, method=method)


HEALTHY = _records([3.0 - 0.04 * i for i in range(60)], [2.9, 2.5, 2.2, 2.0, 1.95, 1.9])


def test_judge_pass():
    result = _judge(_scores(0.2, 0.60), _scores(0.7, 0.59), HEALTHY)
    assert result["verdict"] == "pass"
    assert [c["name"] for c in result["checks"]] == ["improvement", "target", "forgetting", "curves"]
    assert result["general"]["drop_points"] == 1.0


def test_judge_improved_but_short_of_target_fails_on_target_only():
    result = _judge(_scores(0.2, 0.60), _scores(0.5, 0.60), HEALTHY)
    assert result["verdict"] == "fail"
    failed = [c["name"] for c in result["checks"] if not c["passed"]]
    assert failed == ["target"]
    assert result["reasons"] == ["target not reached: rouge_l 0.500 < 0.600 (goal.target_score), 0.100 short"]
    assert _judge(_scores(0.2, 0.60), _scores(0.5, 0.60), HEALTHY, target=None)["verdict"] == "pass"


def test_judge_forgetting_and_no_improvement():
    result = _judge(_scores(0.3, 0.60), _scores(0.3, 0.55), HEALTHY, target=None)
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert failed == {"improvement", "forgetting"}
    assert result["general"]["drop_points"] == 5.0


def test_judge_overfit_curves_fail():
    records = _records([3.0 - 0.04 * i for i in range(70)], [2.5, 2.0, 1.8, 1.9, 2.0, 2.2, 2.4])
    result = _judge(_scores(0.2, 0.6), _scores(0.7, 0.6), records)
    assert result["verdict"] == "fail"
    assert any(OVERFIT_FIX in r for r in result["reasons"])


def test_judge_prompting_plan_skips_forgetting_and_curves():
    result = _judge(_scores(0.2, 0.6), _scores(0.7, None), None, method="prompting")
    assert result["verdict"] == "pass"
    assert [c["name"] for c in result["checks"]] == ["improvement", "target", "forgetting"]
    assert result["diagnostics"] == []


def test_judge_rejects_scores_of_another_plan():
    result = _judge(_scores(0.2, 0.6, plan_id="other"), _scores(0.7, 0.6), HEALTHY)
    assert result["verdict"] == "fail"
    assert "baseline scores" in {c["name"] for c in result["checks"] if not c["passed"]}


def test_judge_missing_general_score_fails_training_plans():
    tuned = {**_scores(0.7, None), "general_note": "lm_eval is not installed"}
    result = _judge(_scores(0.2, None), tuned, HEALTHY)
    assert [c["name"] for c in result["checks"] if not c["passed"]] == ["forgetting"]
    assert "lm_eval is not installed" in result["reasons"][0]
