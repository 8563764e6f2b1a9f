"""gate: decide whether the run's result may be published, and say why.

Reads the baseline and tuned scores (run/baseline_eval/scores.json, run/eval/scores.json) and,
for training plans, the training metrics (metrics.jsonl). Four checks, each its own reason:

* improvement: the tuned task score beats the baseline measured with the same prompt;
* target:      the tuned task score reaches goal.target_score (when one is set) -- separate from
               improvement, so a run that helps but falls short says exactly that;
* forgetting:  the general score drops by at most eval.forgetting_threshold points (training
               plans; prompting and RAG leave the weights alone);
* curves:      loss-curve diagnostics (training plans): NaN, val loss rising for
               eval.diagnostics_window evaluations while train loss falls, no convergence.

Writes gate.json (plan.artifacts.gate), report.md, report.html (self-contained: the verdict, the
baseline-vs-tuned table, the loss curve embedded) and loss.png next to it. A failing verdict
raises StageFailed with the failing reasons, so the stage exits 1 and publish does not run.

``judge`` and ``diagnose`` are pure (no torch, no I/O) for the unit tests.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from runtime.context import RunContext, StageFailed
from runtime.status import write_json_atomic

OVERFIT_FIX = "learning rate too high or adapter overfit: try lr 5e-5 and a smaller adapter_dim"
RISE_TOLERANCE = 1e-4  # relative: a val loss this close to the previous one is not a rise
CONVERGED_DROP = 0.02  # train loss must end at least 2% below where it started


# ----------------------------------------------------------------------------- stage


def run(ctx: RunContext) -> dict:
    plan = ctx.plan
    inputs = ctx.stage.inputs
    baseline = read_scores(ctx.path(inputs.get("baseline", "run/baseline_eval/scores.json")), "baseline_eval")
    tuned = read_scores(ctx.path(inputs.get("tuned", "run/eval/scores.json")), "eval")
    records = None
    metrics_path = None
    if plan.decision.pipeline:
        metrics_path = ctx.path(inputs.get("metrics", plan.artifacts.metrics))
        records = read_metrics(metrics_path)
    result = judge(
        plan_id=plan.id, metric=plan.spec.goal.metric, target=plan.spec.goal.target_score,
        declared_baseline=plan.spec.goal.baseline_score, threshold=plan.spec.eval.forgetting_threshold,
        window=plan.spec.eval.diagnostics_window, baseline=baseline, tuned=tuned, records=records,
        method=plan.decision.method,
    )
    out = ctx.path(ctx.stage.outputs.get("verdict", plan.artifacts.gate))
    folder = out.parent
    png = None
    if records:
        png = folder / "loss.png"
        plot_losses(records, png, title=f"{plan.name}: {plan.decision.method}")
        result["loss_curve"] = _relative(png, ctx.bundle)
    result["report"] = _relative(folder / "report.html", ctx.bundle)
    if metrics_path is not None:
        result["metrics_file"] = _relative(metrics_path, ctx.bundle)
    write_json_atomic(out, result)
    (folder / "report.md").write_text(render_markdown(plan, result, baseline, tuned), encoding="utf-8")
    (folder / "report.html").write_text(render_html(plan, result, baseline, tuned, png), encoding="utf-8")
    for check in result["checks"]:
        ctx.log(f"{'ok  ' if check['passed'] else 'FAIL'} {check['name']}: {check['message']}")
    ctx.log(f"verdict: {result['verdict']} (report: {result['report']})")
    if result["verdict"] != "pass":
        raise StageFailed("gate failed: " + "; ".join(result["reasons"]))
    return result


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


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


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl records (runtime.status.read_jsonl: torn last lines are skipped)."""
    from runtime.status import read_jsonl

    return read_jsonl(path)


# ----------------------------------------------------------------------------- verdict (pure)


def _num(value: Any) -> float | None:
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


def judge(*, plan_id: str, metric: str, target: float | None, declared_baseline: float | None,
          threshold: float, window: int, baseline: dict, tuned: dict, records: list[dict] | None,
          method: str = "lora") -> dict:
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
        if _num(scores.get("task_score")) is None or not math.isfinite(_num(scores.get("task_score")) or 0.0):
            problems.append(f"task_score is {scores.get('task_score')!r}")
        if problems:
            stage = "baseline_eval" if role == "baseline" else "eval"
            check(f"{role} scores", False, f"{role} scores unusable ({'; '.join(problems)}): rerun {stage}")
    b = _num(baseline.get("task_score")) or 0.0
    t = _num(tuned.get("task_score")) or 0.0
    delta = t - b

    if delta > 0:
        check("improvement", True, f"{metric} improved over the baseline: {b:.3f} -> {t:.3f} ({delta:+.3f})")
    else:
        check("improvement", False, f"{metric} did not improve over the baseline: {b:.3f} -> {t:.3f} "
                                    f"({delta:+.3f}); the {method} run did not help on this task")

    if target is None:
        check("target", True, "no target set (goal.target_score is null): judged on improvement only")
    elif round(t, 6) >= target:
        check("target", True, f"target reached: {metric} {t:.3f} >= {target:.3f}")
    else:
        check("target", False, f"target not reached: {metric} {t:.3f} < {target:.3f} (goal.target_score), "
                               f"{target - t:.3f} short")

    general = {"benchmark": tuned.get("general_benchmark") or baseline.get("general_benchmark"),
               "baseline": _num(baseline.get("general_score")), "tuned": _num(tuned.get("general_score")),
               "drop_points": None, "threshold_points": threshold}
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
        where = f"general score {general['baseline']:.3f} -> {general['tuned']:.3f} on {general['benchmark']}"
        if drop <= threshold:
            check("forgetting", True, f"no forgetting beyond {threshold:g} points: {where} ({-drop:+.1f} points)")
        else:
            check("forgetting", False, f"forgetting: {where}, a drop of {drop:.1f} points > {threshold:g} "
                                       "(eval.forgetting_threshold); lower the learning rate, train fewer epochs "
                                       "or use LoRA with a smaller adapter_dim")

    diagnostics = diagnose(records, window, method=method) if records is not None else []
    if records is not None:
        errors = [d for d in diagnostics if d["severity"] == "error"]
        if errors:
            check("curves", False, "; ".join(f"{d['message']} ({d['fix']})" if d.get("fix") else d["message"]
                                             for d in errors))
        else:
            check("curves", True, "loss curves healthy: "
                  + "; ".join(d["message"] for d in diagnostics if d["severity"] == "info"))

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
        "general": general,
        "diagnostics": diagnostics,
    }


def _summary(scores: dict) -> dict:
    keys = ("task_score", "general_score", "n_examples", "n_general", "model", "prompting", "seconds")
    return {k: scores.get(k) for k in keys}


# ----------------------------------------------------------------------------- diagnostics (pure)


def _series(records: list[dict], key: str, kind: str | None) -> list[tuple[int, float]]:
    """(step, value) of the records (of `kind`, or any kind) that carry `key`; the last per step wins."""
    points: dict[int, float] = {}
    for i, r in enumerate(records):
        if (kind is not None and r.get("kind", "step") != kind) or r.get(key) is None:
            continue
        value = _num(r[key])
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
        add("no-metrics", "error", "no training metrics were recorded",
            "rerun the train stage; it writes the metrics file named in plan.artifacts.metrics")
        return out
    train, val = curves(records)
    for name, series in (("train", train), ("val", val)):
        bad = next(((s, v) for s, v in series if not math.isfinite(v)), None)
        if bad is not None:
            add("nan-loss", "error", f"{name} loss became {bad[1]} at step {bad[0]}",
                "lower the learning rate (e.g. 5e-5), keep gradient clipping, train in bf16 or fp32 rather than "
                "fp16, and look for empty or huge records in the data", bad[0])
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
                train_part = f" while train loss fell {t0:.4f} -> {t1:.4f}" if t0 is not None and t1 is not None \
                    else ""
                add("overfit", "error",
                    f"val loss rose for {window} evaluations in a row (step {start[0]} -> {end[0]}: "
                    f"{start[1]:.4f} -> {end[1]:.4f}){train_part}; best val loss {best[1]:.4f} at step {best[0]}",
                    OVERFIT_FIX, end[0])
                break

    if method == "grpo":
        add("grpo-loss", "info", "GRPO loss is not a convergence signal: curves checked for NaN and overfit only")
    elif len(train_finite) < 2:
        add("few-points", "warning", f"{len(train_finite)} train loss point(s): too few to judge convergence",
            "log more often (the train stage's logging interval) or train longer")
    else:
        k = max(1, len(train_finite) // 5)
        first = sum(v for _, v in train_finite[:k]) / k
        last = sum(v for _, v in train_finite[-k:]) / k
        if last > first * (1 + CONVERGED_DROP):
            add("diverged", "error", f"train loss rose from {first:.4f} to {last:.4f}",
                "learning rate too high: try lr 5e-5 (and warmup_steps > 0)", train_finite[-1][0])
        elif last > first * (1 - CONVERGED_DROP):
            add("no-convergence", "error", f"train loss did not fall ({first:.4f} -> {last:.4f}, "
                f"less than {CONVERGED_DROP:.0%}): the model is not learning",
                "check the data and the prompt template; raise the learning rate (e.g. 2e-4) or train more "
                "epochs", train_finite[-1][0])
        else:
            add("train-converging", "info", f"train loss {first:.4f} -> {last:.4f}")
    if val and not any(d["code"] == "overfit" for d in out):
        best = min(val, key=lambda sv: sv[1])
        if len(val) >= 2 and val[-1][1] > val[0][1] * (1 + CONVERGED_DROP):
            add("val-worse", "warning", f"val loss ended above where it started ({val[0][1]:.4f} -> "
                f"{val[-1][1]:.4f}); best {best[1]:.4f} at step {best[0]}",
                "lower the learning rate or train fewer epochs", val[-1][0])
        else:
            add("val", "info", f"val loss {val[0][1]:.4f} -> {val[-1][1]:.4f} (best {best[1]:.4f} at step {best[0]})")
    elif not val:
        add("no-val", "warning", "no val loss was recorded: overfitting cannot be checked",
            "validate during training (method.val_check_interval)")
    return out


# ----------------------------------------------------------------------------- plot


def plot_losses(records: list[dict], path: Path, title: str = "") -> Path:
    """Train and val loss against step, as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = curves(records)
    fig, ax = plt.subplots(figsize=(7.5, 4.0), dpi=110)
    try:
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="#1f77b4", lw=1.4)
        if val:
            ax.plot([s for s, _ in val], [v for _, v in val], label="val loss", color="#d62728", lw=1.6,
                    marker="o", ms=3.5)
            finite = [(s, v) for s, v in val if math.isfinite(v)]
            if finite:
                best = min(finite, key=lambda sv: sv[1])
                ax.axvline(best[0], color="#d62728", ls=":", lw=1, label=f"best val (step {best[0]})")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if title:
            ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


# ----------------------------------------------------------------------------- reports


def _fmt(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return "n/a" if v is None else f"{v:.{digits}f}"


def _rows(result: dict) -> list[tuple[str, str, str, str]]:
    b, t, g = result["baseline"], result["tuned"], result["general"]
    drop = g.get("drop_points")
    return [
        (f"task: {result['metric']}", _fmt(b.get("task_score")), _fmt(t.get("task_score")),
         f"{result['improvement']:+.3f}"),
        ("general benchmark", _fmt(g.get("baseline")), _fmt(g.get("tuned")),
         "n/a" if drop is None else f"{-drop:+.1f} points (max drop {g['threshold_points']:g})"),
        ("examples", str(b.get("n_examples")), str(t.get("n_examples")), ""),
        ("seconds", _fmt(b.get("seconds"), 1), _fmt(t.get("seconds"), 1), ""),
    ]


def _example_pairs(baseline: dict, tuned: dict) -> list[dict]:
    out = []
    base_by_prompt = {e.get("prompt"): e for e in baseline.get("examples") or []}
    for e in tuned.get("examples") or []:
        b = base_by_prompt.get(e.get("prompt"), {})
        out.append({"prompt": e.get("prompt", ""), "reference": e.get("reference", ""),
                    "baseline": b.get("output", ""), "baseline_score": b.get("score"),
                    "tuned": e.get("output", ""), "tuned_score": e.get("score")})
    return out


def render_markdown(plan, result: dict, baseline: dict, tuned: dict) -> str:
    lines = [f"# Gate: {result['verdict'].upper()}", "",
             f"Plan `{plan.id}` ({plan.name}), method **{plan.decision.method}**, model {plan.spec.model.name}, "
             f"output model `{plan.artifacts.output_model}`.", ""]
    target = result["target_score"]
    lines += [(f"Target: {result['metric']} >= {_fmt(target)}" if target is not None else "Target: none set")
              + f" · declared baseline (goal.baseline_score): {_fmt(result['declared_baseline'])}", "",
              "| | baseline | tuned | change |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(result)]
    lines += ["", "## Checks", ""]
    lines += [f"- {'✅' if c['passed'] else '❌'} **{c['name']}**: {c['message']}" for c in result["checks"]]
    if result["diagnostics"]:
        lines += ["", "## Loss-curve diagnostics", ""]
        for d in result["diagnostics"]:
            fix = f" — fix: {d['fix']}" if d.get("fix") else ""
            lines.append(f"- {d['severity'].upper()} `{d['code']}`: {d['message']}{fix}")
    if result.get("loss_curve"):
        lines += ["", "![train and val loss](loss.png)"]
    pairs = _example_pairs(baseline, tuned)
    if pairs:
        lines += ["", "## Examples", ""]
        for i, p in enumerate(pairs, 1):
            lines += [f"### {i}", "", "Prompt:", "", _fence(p["prompt"]), "Reference:", "", _fence(p["reference"]),
                      f"Baseline (score {_fmt(p['baseline_score'])}):", "", _fence(p["baseline"]),
                      f"Tuned (score {_fmt(p['tuned_score'])}):", "", _fence(p["tuned"])]
    return "\n".join(lines).rstrip() + "\n"


def _fence(text: str) -> str:
    return "```text\n" + (text or "").replace("```", "'''") + "\n```\n"


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:980px;
padding:0 1rem;color:#1d2330}
h1{margin:.2rem 0} h2{margin-top:2rem;border-bottom:1px solid #e3e6ec;padding-bottom:.3rem}
.banner{padding:1rem 1.25rem;border-radius:10px;color:#fff;margin:1rem 0}
.pass{background:#1f8a4c} .fail{background:#c0392b}
.meta{color:#555} code{background:#f2f4f7;padding:.05rem .3rem;border-radius:4px}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #e3e6ec;padding:.45rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f7f9} td.num{font-variant-numeric:tabular-nums}
li.ok::marker{content:"✔  ";color:#1f8a4c} li.bad::marker{content:"✘  ";color:#c0392b}
.sev-error{color:#c0392b;font-weight:600} .sev-warning{color:#b7791f;font-weight:600} .sev-info{color:#555}
pre{white-space:pre-wrap;margin:0;font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
img{max-width:100%;border:1px solid #e3e6ec;border-radius:6px}
"""


def render_html(plan, result: dict, baseline: dict, tuned: dict, png: Path | None) -> str:
    e = html.escape
    verdict = result["verdict"]
    target = result["target_score"]
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>Gate {e(verdict)}: {e(plan.name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Gate: {e(plan.name)}</h1>",
             f"<p class='meta'>Plan <code>{e(plan.id)}</code> · method <b>{e(plan.decision.method)}</b> · model "
             f"{e(plan.spec.model.name)} · output <code>{e(plan.artifacts.output_model)}</code></p>",
             f"<div class='banner {e(verdict)}'><b style='font-size:1.3rem'>{e(verdict.upper())}</b><br>"
             + "<br>".join(e(r) for r in result["reasons"]) + "</div>",
             "<h2>Baseline vs tuned</h2>",
             f"<p class='meta'>Target: {e(result['metric'])} &ge; {e(_fmt(target))}" if target is not None
             else "<p class='meta'>Target: none set",
             f" · declared baseline (goal.baseline_score): {e(_fmt(result['declared_baseline']))}</p>",
             "<table><tr><th></th><th>baseline</th><th>tuned</th><th>change</th></tr>"]
    for a, b, c, d in _rows(result):
        parts.append(f"<tr><th>{e(a)}</th><td class='num'>{e(b)}</td><td class='num'>{e(c)}</td>"
                     f"<td class='num'>{e(d)}</td></tr>")
    parts.append("</table>")
    parts.append(f"<p class='meta'>Baseline: {e(str(baseline.get('model', '')))} "
                 f"({e(str(baseline.get('prompting', '')))}) · tuned: {e(str(tuned.get('model', '')))} "
                 f"({e(str(tuned.get('prompting', '')))})</p>")
    parts.append("<h2>Checks</h2><ul>")
    parts += [f"<li class='{'ok' if c['passed'] else 'bad'}'><b>{e(c['name'])}</b>: {e(c['message'])}</li>"
              for c in result["checks"]]
    parts.append("</ul>")
    if result["diagnostics"] or png is not None:
        parts.append("<h2>Loss curves</h2>")
    if png is not None and png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f"<img alt='train and val loss' src='data:image/png;base64,{data}'>")
    if result["diagnostics"]:
        parts.append("<ul>")
        for d in result["diagnostics"]:
            fix = f"<br><i>fix:</i> {e(d['fix'])}" if d.get("fix") else ""
            parts.append(f"<li><span class='sev-{e(d['severity'])}'>{e(d['severity'])}</span> "
                         f"<code>{e(d['code'])}</code> {e(d['message'])}{fix}</li>")
        parts.append("</ul>")
    pairs = _example_pairs(baseline, tuned)
    if pairs:
        parts.append("<h2>Examples</h2><table><tr><th>prompt</th><th>reference</th><th>baseline</th>"
                     "<th>tuned</th></tr>")
        for p in pairs:
            parts.append(f"<tr><td><pre>{e(p['prompt'])}</pre></td><td><pre>{e(p['reference'])}</pre></td>"
                         f"<td><pre>{e(p['baseline'])}</pre><i>score {e(_fmt(p['baseline_score']))}</i></td>"
                         f"<td><pre>{e(p['tuned'])}</pre><i>score {e(_fmt(p['tuned_score']))}</i></td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
