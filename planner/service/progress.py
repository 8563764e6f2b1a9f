"""Where a job stands, read from its bundle: the stages' run/<stage>/status.json and the training metrics.jsonl the
runtime writes, and the executor's view of the run.

`state` derives the job's Customizer status: completed once every training stage completed and the output model
(adapter or weights) is on disk, as Customizer does, while evaluation, the gate and publish may still run; failed
when a stage failed before that or the run ended without it; cancelling and cancelled after a cancel; running
while the run lives; created before it starts. `gate` reads the gate's verdict and whether publish shipped the
model; `training` gives the numbers and the per-epoch loss series of the status endpoint.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.service.executors import RunState
from planner.status import read_json
from schemas.plan import Plan


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a .jsonl file; a torn last line (a writer killed mid-line) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def stage_statuses(plan: Plan, bundle: Path) -> dict[str, dict[str, Any]]:
    """run/<stage>/status.json of each stage of this plan ({} for one not started, or left by another plan)."""
    out = {}
    for stage in plan.stages:
        status = read_json(bundle / "run" / stage.name / "status.json")
        out[stage.name] = status if status.get("plan_id") == plan.id else {}
    return out


def training_stages(plan: Plan) -> list[str]:
    return [s.name for s in plan.stages if s.method is not None]


def output_written(plan: Plan, bundle: Path) -> bool:
    """The trained model is on disk: the adapter (adapter_config.json) or the full model (config.json)."""
    art = plan.artifacts
    if art.adapter_dir:
        return (bundle / art.adapter_dir / "adapter_config.json").is_file()
    if art.model_dir:
        return (bundle / art.model_dir / "config.json").is_file()
    return False


@dataclass(frozen=True)
class Derived:
    status: str
    detail: str | None = None


def state(
    plan: Plan,
    statuses: dict[str, dict[str, Any]],
    run: RunState | None,
    trained: bool,
    cancel_requested: bool,
) -> Derived:
    """The job's status from its stages, its run (None: not started) and whether the output model is written."""
    train = training_stages(plan)
    if train and trained and all(statuses[name].get("state") == "completed" for name in train):
        return Derived("completed")
    failed = next((name for name in statuses if statuses[name].get("state") == "failed"), None)
    if run is None:
        return Derived("cancelled" if cancel_requested else "created")
    if run.alive:
        if cancel_requested:
            return Derived("cancelling")
        if failed is not None:  # the run script is ending after the failed stage
            return Derived("running")
        if run.queued:  # submitted, nothing started yet: waiting in the scheduler's queue
            return Derived("pending", run.detail or None)
        return Derived("running", run.detail or None)
    if cancel_requested or any(s.get("state") == "cancelled" for s in statuses.values()):
        return Derived("cancelled", _last_error(statuses))
    if failed is not None:
        return Derived("failed", f"stage {failed} failed: {statuses[failed].get('error') or 'see run.log'}")
    code = "an unknown status (killed?)" if run.exit_code is None else f"status {run.exit_code}"
    return Derived("failed", f"the run ended with {code} before training completed: see run.log in the job folder")


def _last_error(statuses: dict[str, dict[str, Any]]) -> str | None:
    errors = [s.get("error") for s in statuses.values() if s.get("error")]
    return str(errors[-1]) if errors else None


def gate(
    plan: Plan, bundle: Path, statuses: dict[str, dict[str, Any]], ended: bool, output_model: str
) -> dict[str, Any]:
    """The gate's verdict and whether the model was published (GateVerdict's fields)."""
    verdict_file = read_json(bundle / plan.artifacts.gate)
    gate_status = statuses.get("gate", {})
    publish = statuses.get("publish", {})
    out: dict[str, Any] = {"verdict": "pending", "reasons": [], "published": False, "published_model": None}
    if verdict_file.get("plan_id") == plan.id and verdict_file.get("verdict") in ("pass", "fail"):
        out["verdict"] = verdict_file["verdict"]
        out["reasons"] = [str(r) for r in verdict_file.get("reasons", [])]
        out["gate"] = verdict_file
        if verdict_file.get("report"):
            out["report"] = str(bundle / verdict_file["report"])
    elif gate_status.get("state") == "failed":
        out["verdict"] = "error"
        out["reasons"] = [str(gate_status.get("error") or "the gate stage failed")]
    elif ended:
        out["verdict"] = "not_run"
        stopped = next((n for n, s in statuses.items() if s.get("state") in ("failed", "cancelled")), None)
        out["reasons"] = [f"the run stopped at stage {stopped}" if stopped else "the run ended before the gate"]
    if publish.get("state") == "completed" and out["verdict"] == "pass":
        out["published"] = True
        out["published_model"] = output_model
        out["published_dir"] = publish.get("published")
    elif out["verdict"] == "fail":
        out["reasons"] = [*out["reasons"], f"{output_model} is not published: the gate failed"]
    return out


def training(plan: Plan, bundle: Path, statuses: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The status endpoint's numbers: the running (or last) training stage's steps and epochs, the progress of the
    whole training (an SFT stage before DPO counts as its share), the best epoch's losses, and the per-epoch
    train_loss and val_loss series of the main training stage, in Customizer's metrics shape."""
    names = training_stages(plan)
    if not names:
        return {}
    current = next((n for n in reversed(names) if statuses[n]), names[0])
    status = statuses[current]
    index = names.index(current)
    done = float(status.get("percentage_done") or 0.0)
    if status.get("state") == "completed":
        done = 100.0
    percentage = round((index * 100.0 + done) / len(names), 2)
    stage = next(s for s in plan.stages if s.name == current)
    epochs = getattr(stage.method, "epochs", None)
    total = status.get("total_steps")
    per_epoch = math.ceil(total / epochs) if isinstance(total, int) and total and epochs else None
    records = read_jsonl(bundle / "run" / names[-1] / "metrics.jsonl") if statuses[names[-1]] else []
    epoch_rows = [r for r in records if r.get("kind") == "epoch"]
    series: dict[str, list[dict[str, Any]]] = {"train_loss": [], "val_loss": []}
    for row in epoch_rows:
        for key in series:
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                point = {"step": row.get("step"), "value": value, "epoch": _epoch(row.get("epoch"))}
                series[key].append({**point, "timestamp": row.get("time")})
    best = min(
        (r for r in epoch_rows if isinstance(r.get("val_loss"), (int, float))),
        key=lambda r: r["val_loss"],
        default=None,
    )
    return {
        "percentage_done": percentage,
        "epochs_completed": status.get("epochs_completed"),
        "steps_completed": status.get("steps_completed"),
        "steps_per_epoch": per_epoch,
        "best_epoch": status.get("best_epoch"),
        "train_loss": best.get("train_loss") if best else status.get("train_loss"),
        "val_loss": best.get("val_loss") if best else status.get("val_loss"),
        "metrics": {"keys": [k for k in series if series[k]], "metrics": series},
    }


def _epoch(value: Any) -> int | None:
    return math.floor(value + 1e-6) if isinstance(value, (int, float)) else None


def stages(plan: Plan, statuses: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": s.name, "state": statuses[s.name].get("state", "not started"), "error": statuses[s.name].get("error")}
        for s in plan.stages
    ]


__all__ = ["Derived", "gate", "output_written", "stage_statuses", "stages", "state", "training"]
