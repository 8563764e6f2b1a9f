"""The gate's verdict, pure (no torch, no I/O): four checks on the baseline and tuned scores and the training metrics.

* improvement: the tuned task score beats the baseline measured with the same prompt;
* target:      the tuned task score reaches goal.target_score (when one is set) -- separate from
               improvement, so a run that helps but falls short says exactly that;
* forgetting:  the general score does not drop by more than eval.forgetting_threshold points (training
               plans; prompting and RAG leave the weights alone), judged on the 95% interval of the drop
               (runtime.gate.stats: a paired bootstrap over the benchmark's items): it fails only when the
               interval's lower bound is above the threshold, i.e. the drop is beyond it with 97.5% confidence.
               A drop whose point estimate is above the threshold but whose interval reaches below it passes,
               marked inconclusive, with the benchmark size that would decide it: on 100 items a few flipped
               answers are noise, and they must not decide the verdict;
* curves:      loss-curve diagnostics (training plans): NaN, val loss rising for
               eval.diagnostics_window evaluations while train loss falls, no convergence.

judge returns the verdict with every check's message; diagnose the loss-curve findings; curves the (train,
val) loss series that the plot draws too.
"""

from __future__ import annotations

import math
from typing import Any

from runtime.gate import stats

OVERFIT_FIX = "learning rate too high or adapter overfit: try lr 5e-5 and a smaller adapter_dim"
FORGETTING_RULE = (
    "fail when the 95% interval's lower bound exceeds the threshold (the drop is beyond it with 97.5% confidence); "
    "a point estimate above the threshold whose interval reaches below it passes as inconclusive"
)
RISE_TOLERANCE = 1e-4  # relative: a val loss this close to the previous one is not a rise
CONVERGED_DROP = 0.02  # train loss must end at least 2% below where it started


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def judge(
    *,
    plan_id: str,
    metric: str,
    target: float | None,
    declared_baseline: float | None,
    threshold: float,
    window: int,
    baseline: dict,
    tuned: dict,
    records: list[dict] | None,
    method: str = "lora",
) -> dict:
    """The verdict from the two score files and the training metrics (None: no training)."""
    checks: list[dict] = []

    def check(name: str, passed: bool, message: str) -> None:
        checks.append({"name": name, "passed": bool(passed), "message": message})

    for role, scores in (("baseline", baseline), ("tuned", tuned)):
        problems = []
        if scores.get("plan_id") not in (None, plan_id):
            problems.append(f"scores are from plan {scores.get('plan_id')}, not {plan_id}")
        if scores.get("metric") not in (None, metric):
            problems.append(f"scored with {scores.get('metric')}, the goal's metric is {metric}")
        if not scores.get("n_examples"):
            problems.append("no examples were evaluated")
        if number(scores.get("task_score")) is None or not math.isfinite(number(scores.get("task_score")) or 0.0):
            problems.append(f"task_score is {scores.get('task_score')!r}")
        if problems:
            stage = "baseline_eval" if role == "baseline" else "eval"
            check(f"{role} scores", False, f"{role} scores unusable ({'; '.join(problems)}): rerun {stage}")
    b = number(baseline.get("task_score")) or 0.0
    t = number(tuned.get("task_score")) or 0.0
    delta = t - b

    if delta > 0:
        check("improvement", True, f"{metric} improved over the baseline: {b:.3f} -> {t:.3f} ({delta:+.3f})")
    else:
        check(
            "improvement",
            False,
            f"{metric} did not improve over the baseline: {b:.3f} -> {t:.3f} "
            f"({delta:+.3f}); the {method} run did not help on this task",
        )

    if target is None:
        check("target", True, "no target set (goal.target_score is null): judged on improvement only")
    elif round(t, 6) >= target:
        check("target", True, f"target reached: {metric} {t:.3f} >= {target:.3f}")
    else:
        check(
            "target",
            False,
            f"target not reached: {metric} {t:.3f} < {target:.3f} (goal.target_score), {target - t:.3f} short",
        )

    general = {
        "benchmark": tuned.get("general_benchmark") or baseline.get("general_benchmark"),
        "baseline": number(baseline.get("general_score")),
        "tuned": number(tuned.get("general_score")),
        "drop_points": None,
        "threshold_points": threshold,
    }
    forgetting: dict = {"drop_points": None, "interval_95": None, "method": None, "n_items": 0}
    if records is None:
        general["tuned"] = general["tuned"] if general["tuned"] is not None else general["baseline"]
        general["drop_points"] = 0.0 if general["baseline"] is not None else None
        check("forgetting", True, f"not applicable: a {method} plan does not change the model's weights")
    elif general["baseline"] is None or general["tuned"] is None:
        note = tuned.get("general_note") or baseline.get("general_note") or "no general score was recorded"
        check("forgetting", False, f"forgetting not checked on {general['benchmark']}: {note}")
    else:
        drop = round((general["baseline"] - general["tuned"]) * 100, 4)
        general["drop_points"] = drop
        forgetting = forgetting_interval(baseline, tuned, threshold)
        lo, hi = forgetting["interval_95"]
        sized = (
            f"95% interval {lo:+.1f} to {hi:+.1f}, {forgetting['method']} over {forgetting['n_items']} items"
            if forgetting["n_items"]
            else f"no interval: {forgetting['method']}"
        )
        where = (
            f"general score {general['baseline']:.3f} -> {general['tuned']:.3f} on {general['benchmark']}, "
            f"a drop of {drop:.1f} points ({sized})"
        )
        if lo > threshold:
            check(
                "forgetting",
                False,
                f"forgetting: {where}: the whole interval is above {threshold:g} points "
                "(eval.forgetting_threshold); lower the learning rate, train fewer epochs "
                "or use LoRA with a smaller adapter_dim",
            )
        elif drop > threshold:
            forgetting["inconclusive"] = True
            check(
                "forgetting",
                True,
                f"inconclusive, passed: {where}: above {threshold:g} points but the interval reaches below it, so "
                f"{forgetting['n_items']} items cannot tell it from noise; a larger general benchmark "
                "(eval.general_benchmark) would decide it",
            )
        else:
            check("forgetting", True, f"no forgetting beyond {threshold:g} points: {where}")

    diagnostics = diagnose(records, window, method=method) if records is not None else []
    if records is not None:
        errors = [d for d in diagnostics if d["severity"] == "error"]
        if errors:
            check(
                "curves",
                False,
                "; ".join(f"{d['message']} ({d['fix']})" if d.get("fix") else d["message"] for d in errors),
            )
        else:
            check(
                "curves",
                True,
                "loss curves healthy: " + "; ".join(d["message"] for d in diagnostics if d["severity"] == "info"),
            )

    failed = [c for c in checks if not c["passed"]]
    verdict = "fail" if failed else "pass"
    return {
        "verdict": verdict,
        "reasons": [c["message"] for c in (failed or checks)],
        "checks": checks,
        "plan_id": plan_id,
        "metric": metric,
        "target_score": target,
        "declared_baseline": declared_baseline,
        "improvement": round(delta, 6),
        "baseline": _summary(baseline),
        "tuned": _summary(tuned),
        "improvement_interval": improvement_interval(baseline, tuned),
        "general": general,
        "forgetting": forgetting,
        "diagnostics": diagnostics,
    }


def forgetting_interval(baseline: dict, tuned: dict, threshold: float) -> dict:
    """The general-score drop in points with its 95% interval: paired over the items when both score files list
    them (right/wrong per item, same benchmark, same order), else the unpaired normal approximation."""
    out: dict = {"threshold_points": threshold, "rule": FORGETTING_RULE}
    paired = _paired(baseline.get("general_items"), tuned.get("general_items"))
    if paired is not None:
        b_items, t_items = paired
        point, lo, hi = stats.paired_bootstrap(b_items, t_items)
        out.update(method=stats.PAIRED, n_items=len(b_items), flips=stats.flips(b_items, t_items))
        out["resamples"], out["seed"] = stats.RESAMPLES, stats.SEED
    else:
        b, t = number(baseline.get("general_score")) or 0.0, number(tuned.get("general_score")) or 0.0
        n_b, n_t = int(number(baseline.get("n_general")) or 0), int(number(tuned.get("n_general")) or 0)
        if n_b and n_t:
            point, lo, hi = stats.unpaired_normal(b, t, n_b, n_t)
            out.update(method=stats.UNPAIRED, n_items=min(n_b, n_t))
        else:  # nothing to size an interval by: judge the point estimate, and say so
            point = lo = hi = b - t
            out.update(method="point estimate (the score files give no item count)", n_items=0)
    out["drop_points"] = round(point * 100, 4)
    out["interval_95"] = [round(lo * 100, 4), round(hi * 100, 4)]
    out["inconclusive"] = False
    return {k: out[k] for k in sorted(out)}


def improvement_interval(baseline: dict, tuned: dict) -> dict:
    """The task score's change (tuned - baseline) with its paired 95% interval, when the task score is the mean of
    the per-example scores both files list (exact match, ROUGE-L, pass@1, preference accuracy); otherwise why not.
    For the report: the improvement check itself compares the two scores."""
    paired = _paired(baseline.get("task_items"), tuned.get("task_items"))
    if paired is None:
        return {"interval_95": None, "note": "no per-example scores on both sides"}
    b_items, t_items = paired
    for scores, items in ((baseline, b_items), (tuned, t_items)):
        if abs(sum(items) / len(items) - (number(scores.get("task_score")) or 0.0)) > 1e-4:
            return {"interval_95": None, "note": f"{scores.get('metric')} is not a mean of per-example scores"}
    point, lo, hi = stats.paired_bootstrap(t_items, b_items)
    return {
        "change": round(point, 6),
        "interval_95": [round(lo, 6), round(hi, 6)],
        "method": stats.PAIRED,
        "n_items": len(b_items),
    }


def _paired(a: Any, b: Any) -> tuple[list[float], list[float]] | None:
    """Two per-item lists of numbers of the same length, or None."""
    if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) > 0):
        return None
    xs, ys = [number(x) for x in a], [number(y) for y in b]
    if any(v is None for v in (*xs, *ys)):
        return None
    return [float(x or 0.0) for x in xs], [float(y or 0.0) for y in ys]


def _summary(scores: dict) -> dict:
    keys = ("task_score", "general_score", "n_examples", "n_general", "model", "prompting", "seconds")
    return {k: scores.get(k) for k in keys}


# ----------------------------------------------------------------------------- diagnostics


def _series(records: list[dict], key: str, kind: str | None) -> list[tuple[int, float]]:
    """(step, value) of the records (of `kind`, or any kind) that carry `key`; the last per step wins."""
    points: dict[int, float] = {}
    for i, r in enumerate(records):
        if (kind is not None and r.get("kind", "step") != kind) or r.get(key) is None:
            continue
        value = number(r[key])
        if value is None:
            continue
        step = r.get("step")
        points[int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else i] = value
    return sorted(points.items())


def curves(records: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train, val) loss series by step: train from step records (epoch averages if there are none),
    val from every record that carries one."""
    train = _series(records, "train_loss", "step") or _series(records, "train_loss", "epoch")
    return train, _series(records, "val_loss", None)


def _at(series: list[tuple[int, float]], step: int) -> float | None:
    """The last value at or before `step` (the first value if the series starts later)."""
    found = None
    for s, v in series:
        if s > step:
            break
        found = v
    return found if found is not None else (series[0][1] if series else None)


def diagnose(records: list[dict], window: int = 3, *, method: str = "lora") -> list[dict]:
    """Loss-curve findings: {code, severity (error|warning|info), message, fix, step}."""
    out: list[dict] = []

    def add(code: str, severity: str, message: str, fix: str = "", step: int | None = None) -> None:
        out.append({"code": code, "severity": severity, "message": message, "fix": fix, "step": step})

    if not records:
        add(
            "no-metrics",
            "error",
            "no training metrics were recorded",
            "rerun the train stage; it writes the metrics file named in plan.artifacts.metrics",
        )
        return out
    train, val = curves(records)
    for name, series in (("train", train), ("val", val)):
        bad = next(((s, v) for s, v in series if not math.isfinite(v)), None)
        if bad is not None:
            add(
                "nan-loss",
                "error",
                f"{name} loss became {bad[1]} at step {bad[0]}",
                "lower the learning rate (e.g. 5e-5), keep gradient clipping, train in bf16 or fp32 rather than "
                "fp16, and look for empty or huge records in the data",
                bad[0],
            )
    if any(d["code"] == "nan-loss" for d in out):
        return out
    train_finite = [(s, v) for s, v in train if math.isfinite(v)]

    # val loss rising for `window` evaluations in a row while train loss falls
    rises = 0
    for i in range(1, len(val)):
        prev, cur = val[i - 1][1], val[i][1]
        rises = rises + 1 if cur > prev + RISE_TOLERANCE * max(abs(prev), 1e-12) else 0
        if rises >= window:
            start, end = val[i - window], val[i]
            t0, t1 = _at(train_finite, start[0]), _at(train_finite, end[0])
            if t0 is None or t1 is None or t1 < t0:
                best = min(val, key=lambda sv: sv[1])
                train_part = f" while train loss fell {t0:.4f} -> {t1:.4f}" if t0 is not None and t1 is not None else ""
                add(
                    "overfit",
                    "error",
                    f"val loss rose for {window} evaluations in a row (step {start[0]} -> {end[0]}: "
                    f"{start[1]:.4f} -> {end[1]:.4f}){train_part}; best val loss {best[1]:.4f} at step {best[0]}",
                    OVERFIT_FIX,
                    end[0],
                )
                break

    if method == "grpo":
        add("grpo-loss", "info", "GRPO loss is not a convergence signal: curves checked for NaN and overfit only")
    elif len(train_finite) < 2:
        add(
            "few-points",
            "warning",
            f"{len(train_finite)} train loss point(s): too few to judge convergence",
            "log more often (the train stage's logging interval) or train longer",
        )
    else:
        k = max(1, len(train_finite) // 5)
        first = sum(v for _, v in train_finite[:k]) / k
        last = sum(v for _, v in train_finite[-k:]) / k
        if last > first * (1 + CONVERGED_DROP):
            add(
                "diverged",
                "error",
                f"train loss rose from {first:.4f} to {last:.4f}",
                "learning rate too high: try lr 5e-5 (and warmup_steps > 0)",
                train_finite[-1][0],
            )
        elif last > first * (1 - CONVERGED_DROP):
            add(
                "no-convergence",
                "error",
                f"train loss did not fall ({first:.4f} -> {last:.4f}, "
                f"less than {CONVERGED_DROP:.0%}): the model is not learning",
                "check the data and the prompt template; raise the learning rate (e.g. 2e-4) or train more epochs",
                train_finite[-1][0],
            )
        else:
            add("train-converging", "info", f"train loss {first:.4f} -> {last:.4f}")
    if val and not any(d["code"] == "overfit" for d in out):
        best = min(val, key=lambda sv: sv[1])
        if len(val) >= 2 and val[-1][1] > val[0][1] * (1 + CONVERGED_DROP):
            add(
                "val-worse",
                "warning",
                f"val loss ended above where it started ({val[0][1]:.4f} -> "
                f"{val[-1][1]:.4f}); best {best[1]:.4f} at step {best[0]}",
                "lower the learning rate or train fewer epochs",
                val[-1][0],
            )
        else:
            add("val", "info", f"val loss {val[0][1]:.4f} -> {val[-1][1]:.4f} (best {best[1]:.4f} at step {best[0]})")
    elif not val:
        add(
            "no-val",
            "warning",
            "no val loss was recorded: overfitting cannot be checked",
            "validate during training (method.val_check_interval)",
        )
    return out
