"""A job's status, derived from its run and its bundle's files (planner.service.progress): table-driven, no server,
no training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.service import progress
from planner.service.executors import RunState
from tests.unit.helpers import make_plan

PLAN = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "method=lora")
NAMES = [s.name for s in PLAN.stages]
ALIVE, ENDED_0, ENDED_1, KILLED = RunState(True), RunState(False, 0), RunState(False, 1), RunState(False, None)
QUEUED = RunState(True, detail="Slurm job 7 (stage validate_data) is PENDING (Resources)", queued=True)


def statuses(**states: str) -> dict[str, dict]:
    return {name: ({"state": states[name], "error": f"{name} broke"} if name in states else {}) for name in NAMES}


@pytest.mark.parametrize(
    "stages, run, trained, cancel, expected",
    [
        pytest.param({}, None, False, False, "created", id="not-started"),
        pytest.param({}, None, False, True, "cancelled", id="cancelled-in-the-queue"),
        pytest.param({"validate_data": "running"}, ALIVE, False, False, "running", id="running"),
        pytest.param({}, QUEUED, False, False, "pending", id="in-the-scheduler-queue"),
        pytest.param({}, QUEUED, False, True, "cancelling", id="cancelling-in-the-scheduler-queue"),
        pytest.param({"train": "running"}, ALIVE, False, True, "cancelling", id="cancelling"),
        pytest.param({"train": "completed", "eval": "running"}, ALIVE, True, False, "completed", id="trained"),
        pytest.param({"train": "completed", "gate": "failed"}, ENDED_1, True, False, "completed", id="gate-failed"),
        pytest.param({"train": "completed"}, ENDED_0, False, False, "failed", id="no-output-model"),
        pytest.param({"train": "failed"}, ALIVE, False, False, "running", id="script-ending"),
        pytest.param({"train": "failed"}, ENDED_1, False, False, "failed", id="stage-failed"),
        pytest.param({"train": "cancelled"}, ENDED_1, False, True, "cancelled", id="cancelled"),
        pytest.param({"validate_data": "completed"}, KILLED, False, False, "failed", id="killed"),
    ],
)
def test_the_status_of_a_job(stages, run, trained, cancel, expected):
    assert progress.state(PLAN, statuses(**stages), run, trained, cancel).status == expected


def test_a_failure_names_the_stage_and_its_error():
    derived = progress.state(PLAN, statuses(train="failed"), ENDED_1, False, False)
    assert derived.detail == "stage train failed: train broke"
    queued = progress.state(PLAN, statuses(), QUEUED, False, False)
    assert queued.detail == "Slurm job 7 (stage validate_data) is PENDING (Resources)"
    killed = progress.state(PLAN, statuses(validate_data="completed"), KILLED, False, False)
    assert "unknown status" in (killed.detail or "")


def _bundle(tmp_path: Path, verdict: str | None, published: bool) -> Path:
    for name in NAMES:
        (tmp_path / "run" / name).mkdir(parents=True)
    if verdict is not None:
        gate = {"plan_id": PLAN.id, "verdict": verdict, "reasons": ["target not reached"], "report": "run/gate/r.html"}
        (tmp_path / PLAN.artifacts.gate).write_text(json.dumps(gate))
    if published:
        (tmp_path / "run/publish/status.json").write_text(json.dumps({"plan_id": PLAN.id, "state": "completed"}))
    return tmp_path


@pytest.mark.parametrize(
    "verdict, published, ended, expected, model",
    [
        pytest.param(None, False, False, "pending", None, id="pending"),
        pytest.param(None, False, True, "not_run", None, id="not-run"),
        pytest.param("pass", True, True, "pass", "ns/m@cust-1", id="published"),
        pytest.param("fail", False, True, "fail", None, id="kept-out"),
    ],
)
def test_the_gate_and_the_published_name(tmp_path, verdict, published, ended, expected, model):
    bundle = _bundle(tmp_path, verdict, published)
    gate = progress.gate(PLAN, bundle, progress.stage_statuses(PLAN, bundle), ended, "ns/m@cust-1")
    assert (gate["verdict"], gate["published_model"]) == (expected, model)
    if verdict == "fail":
        assert gate["reasons"][-1] == "ns/m@cust-1 is not published: the gate failed"


def test_the_loss_series_are_per_epoch_and_the_losses_the_best_epochs(tmp_path):
    train = tmp_path / "run" / "train"
    train.mkdir(parents=True)
    (train / "status.json").write_text(
        json.dumps(
            {
                "plan_id": PLAN.id,
                "state": "running",
                "steps_completed": 75,
                "total_steps": 100,
                "percentage_done": 75.0,
                "epochs_completed": 1,
                "best_epoch": 1,
            }
        )
    )
    rows = [
        {"kind": "step", "step": 10, "epoch": 0.2, "train_loss": 5.0, "val_loss": None},
        {"kind": "epoch", "step": 50, "epoch": 1.0, "train_loss": 4.0, "val_loss": 3.0, "time": "2026-12-02T10:00:00Z"},
        {"kind": "epoch", "step": 100, "epoch": 2.0, "train_loss": 3.5, "val_loss": 3.2},
    ]
    (train / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    out = progress.training(PLAN, tmp_path, progress.stage_statuses(PLAN, tmp_path))
    assert out["metrics"]["keys"] == ["train_loss", "val_loss"]
    assert [(p["epoch"], p["value"]) for p in out["metrics"]["metrics"]["val_loss"]] == [(1, 3.0), (2, 3.2)]
    # each point carries the time its line was written (null for a line written without one)
    assert [p["timestamp"] for p in out["metrics"]["metrics"]["val_loss"]] == ["2026-12-02T10:00:00Z", None]
    assert (out["train_loss"], out["val_loss"]) == (4.0, 3.0)
    assert (
        out["percentage_done"] == 75.0
        and out["steps_per_epoch"] == 100 // PLAN.stages[NAMES.index("train")].method.epochs
    )
