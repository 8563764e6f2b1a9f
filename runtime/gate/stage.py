"""The gate stage: decide whether the run's result may be published, and say why.

Reads the baseline and tuned scores (run/baseline_eval/scores.json, run/eval/scores.json) and, for training
plans, the training metrics (metrics.jsonl); judges them (runtime.gate.verdict); writes gate.json
(plan.artifacts.gate), report.md, report.html (runtime.gate.report) and curves.png (runtime.gate.plot: every
training stage's curves) next to it. A failing verdict raises StageFailed with the failing reasons, so the stage
exits 1 and publish does not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from runtime import tracking
from runtime.context import RunContext, StageFailed
from runtime.gate.plot import StageCurves, plot_curves
from runtime.gate.report import render_html, render_markdown
from runtime.gate.verdict import judge
from runtime.memory import WARN_RATIO, compare, planned
from runtime.status import read_jsonl, write_json_atomic
from schemas.plan import Plan


def run(ctx: RunContext) -> dict:
    plan = ctx.plan
    inputs = ctx.stage.inputs
    baseline = read_scores(ctx.path(inputs.get("baseline", "run/baseline_eval/scores.json")), "baseline_eval")
    tuned = read_scores(ctx.path(inputs.get("tuned", "run/eval/scores.json")), "eval")
    records = None
    metrics_path = None
    if plan.decision.pipeline:
        metrics_path = ctx.path(inputs.get("metrics", plan.artifacts.metrics))
        records = read_jsonl(metrics_path)  # a torn last line (a killed writer) is skipped
    result = judge(
        plan_id=plan.id,
        metric=plan.spec.goal.metric,
        target=plan.spec.goal.target_score,
        declared_baseline=plan.spec.goal.baseline_score,
        threshold=plan.spec.eval.forgetting_threshold,
        window=plan.spec.eval.diagnostics_window,
        baseline=baseline,
        tuned=tuned,
        records=records,
        method=plan.decision.method,
    )
    result["measured"] = against_plan(ctx)
    out = ctx.path(ctx.stage.outputs.get("verdict", plan.artifacts.gate))
    folder = out.parent
    png = None
    stages = training_curves(plan, ctx.path)
    if any(s.records for s in stages):
        png = folder / "curves.png"
        plot_curves(stages, png, title=f"{plan.name}: {' -> '.join(plan.decision.pipeline)}")
        result["curves"] = _relative(png, ctx.bundle)
    result["report"] = _relative(folder / "report.html", ctx.bundle)
    if metrics_path is not None:
        result["metrics_file"] = _relative(metrics_path, ctx.bundle)
    write_json_atomic(out, result)
    tracking.log(ctx, gate_metrics(result))
    (folder / "report.md").write_text(render_markdown(plan, result, baseline, tuned), encoding="utf-8")
    (folder / "report.html").write_text(render_html(plan, result, baseline, tuned, png), encoding="utf-8")
    for m in result["measured"]:
        if m["memory_over_plan"]:
            ctx.log(
                f"warning: {m['stage']} peaked at {m['memory_ratio']:.2f}x its planned memory (over {WARN_RATIO:.2f}x)"
            )
    for check in result["checks"]:
        ctx.log(f"{'ok  ' if check['passed'] else 'FAIL'} {check['name']}: {check['message']}")
    ctx.log(f"verdict: {result['verdict']} (report: {result['report']})")
    if result["verdict"] != "pass":
        raise StageFailed("gate failed: " + "; ".join(result["reasons"]))
    return result


def gate_metrics(result: dict) -> dict[str, float]:
    """The verdict as tracking metrics: pass (1/0) and each check, the task change with its interval, the general
    score's drop with its 95% interval."""
    out: dict[str, float] = {"gate/pass": float(result["verdict"] == "pass")}
    out.update({f"gate/check/{c['name']}": float(c["passed"]) for c in result["checks"]})
    for key, value in (
        ("gate/improvement", result.get("improvement")),
        ("gate/baseline_task_score", (result.get("baseline") or {}).get("task_score")),
        ("gate/tuned_task_score", (result.get("tuned") or {}).get("task_score")),
        ("gate/forgetting/drop_points", (result.get("forgetting") or {}).get("drop_points")),
    ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    for name, interval in (
        ("gate/improvement_interval", (result.get("improvement_interval") or {}).get("interval_95")),
        ("gate/forgetting/interval_95", (result.get("forgetting") or {}).get("interval_95")),
    ):
        if isinstance(interval, (list, tuple)) and len(interval) == 2:
            out[f"{name}/low"], out[f"{name}/high"] = float(interval[0]), float(interval[1])
    return out


def training_curves(plan: Plan, path: Callable[[str], Path]) -> list[StageCurves]:
    """Each training stage's metrics.jsonl records (`path` makes a bundle-relative path absolute), in pipeline
    order: an SFT base stage first."""
    out = []
    for stage in plan.stages:
        if stage.method is not None:
            records = read_jsonl(path(stage.outputs.get("metrics", f"run/{stage.name}/metrics.jsonl")))
            out.append(StageCurves(stage.name, stage.method.kind, records))
    return out


def against_plan(ctx: RunContext) -> list[dict]:
    """Each training stage's measured peak memory and tokens/s (its status.json) beside the plan's estimate."""
    out = []
    for stage in ctx.plan.stages:
        if stage.method is None:
            continue
        path = ctx.path(f"run/{stage.name}/status.json")
        try:
            status = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            status = {}
        measured = {k: status.get(k) for k in ("peak_memory_bytes", "tokens_per_second")}
        out.append({"stage": stage.name, **measured, **compare(measured, planned(stage.estimate))})
    return out


def read_scores(path: Path, stage: str) -> dict:
    if not path.is_file():
        raise StageFailed(f"no scores at {path}: run the {stage} stage first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StageFailed(f"{path} is not valid JSON ({exc}): rerun the {stage} stage") from None
    if not isinstance(data, dict) or "task_score" not in data:
        raise StageFailed(f"{path} has no task_score: rerun the {stage} stage")
    return data


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
