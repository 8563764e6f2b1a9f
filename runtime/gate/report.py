"""The gate's reports for people: report.md and report.html (templates/report/gate.html.j2; self-contained,
the loss curve embedded), from the verdict, the two score files and the loss plot."""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

from runtime.gate.verdict import number
from schemas.plan import Plan


def _fmt(value: Any, digits: int = 3) -> str:
    v = number(value)
    return "n/a" if v is None else f"{v:.{digits}f}"


def rows(result: dict) -> list[tuple[str, str, str, str]]:
    """The baseline-vs-tuned table: (what, baseline, tuned, change)."""
    b, t, g = result["baseline"], result["tuned"], result["general"]
    drop = g.get("drop_points")
    return [
        (
            f"task: {result['metric']}",
            _fmt(b.get("task_score")),
            _fmt(t.get("task_score")),
            f"{result['improvement']:+.3f}",
        ),
        (
            "general benchmark",
            _fmt(g.get("baseline")),
            _fmt(g.get("tuned")),
            "n/a" if drop is None else f"{-drop:+.1f} points (max drop {g['threshold_points']:g})",
        ),
        *interval_rows(result),
        ("examples", str(b.get("n_examples")), str(t.get("n_examples")), ""),
        ("seconds", _fmt(b.get("seconds"), 1), _fmt(t.get("seconds"), 1), ""),
    ]


def interval_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """The 95% intervals under the table: the general score's drop (what the forgetting check judges) and the task
    score's change, when they were measured."""
    out = []
    task = result.get("improvement_interval") or {}
    if task.get("interval_95"):
        lo, hi = task["interval_95"]
        out.append(("task change, 95% interval", "", "", f"{lo:+.3f} to {hi:+.3f} ({task['method']})"))
    f = result.get("forgetting") or {}
    if f.get("interval_95"):
        lo, hi = f["interval_95"]
        flips = f.get("flips")
        moved = f", {flips['right_to_wrong']} right→wrong, {flips['wrong_to_right']} wrong→right" if flips else ""
        out.append(
            (
                "general drop, 95% interval",
                "",
                "",
                f"{lo:+.1f} to {hi:+.1f} points ({f['method']}, {f['n_items']} items{moved})",
            )
        )
    return out


def forgetting_rule(result: dict) -> str:
    """How the forgetting check reads the interval, for the report; empty when it was not measured."""
    f = result.get("forgetting") or {}
    if not f.get("interval_95"):
        return ""
    verdict = " This run's drop is above the threshold but inconclusive." if f.get("inconclusive") else ""
    return (
        f"Forgetting is judged on the interval, not the point estimate: the check fails only when the whole 95% "
        f"interval of the drop lies above {f['threshold_points']:g} points (eval.forgetting_threshold). On "
        f"{f['n_items']} items a few flipped answers move the drop by a point each, so they cannot decide the "
        f"verdict; a drop above the threshold whose interval reaches below it passes as inconclusive.{verdict}"
    )


def example_pairs(baseline: dict, tuned: dict) -> list[dict]:
    """The tuned examples next to the baseline's answer to the same prompt."""
    out = []
    base_by_prompt = {e.get("prompt"): e for e in baseline.get("examples") or []}
    for e in tuned.get("examples") or []:
        b = base_by_prompt.get(e.get("prompt"), {})
        out.append(
            {
                "prompt": e.get("prompt", ""),
                "reference": e.get("reference", ""),
                "baseline": b.get("output", ""),
                "baseline_score": _fmt(b.get("score")),
                "tuned": e.get("output", ""),
                "tuned_score": _fmt(e.get("score")),
            }
        )
    return out


def measured_rows(result: dict) -> list[dict]:
    """Measured against planned, per training stage: the table rows (text) and whether the memory is over."""
    out = []
    for m in result.get("measured") or []:
        mem_ratio, tok_ratio = m.get("memory_ratio"), m.get("tokens_per_second_ratio")
        out.append(
            {
                "stage": m["stage"],
                "peak": _gb(m.get("peak_memory_bytes")),
                "planned": _gb(m.get("estimated_memory_bytes")),
                "memory_ratio": "n/a" if mem_ratio is None else f"{mem_ratio:.2f}",
                "tokens": _fmt(m.get("tokens_per_second"), 0),
                "planned_tokens": _fmt(m.get("estimated_tokens_per_second"), 0),
                "tokens_ratio": "n/a" if tok_ratio is None else f"{tok_ratio:.2f}",
                "warning": bool(m.get("memory_over_plan")),
            }
        )
    return out


def _gb(value: Any) -> str:
    v = number(value)
    return "n/a" if v is None else f"{v / 1e9:.2f} GB"


# ----------------------------------------------------------------------------- markdown


def render_markdown(plan: Plan, result: dict, baseline: dict, tuned: dict) -> str:
    lines = [
        f"# Gate: {result['verdict'].upper()}",
        "",
        f"Plan `{plan.id}` ({plan.name}), method **{plan.decision.method}**, model {plan.spec.model.name}, "
        f"output model `{plan.artifacts.output_model}`.",
        "",
    ]
    target = result["target_score"]
    lines += [
        (f"Target: {result['metric']} >= {_fmt(target)}" if target is not None else "Target: none set")
        + f" · declared baseline (goal.baseline_score): {_fmt(result['declared_baseline'])}",
        "",
        "| | baseline | tuned | change |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(result)]
    if forgetting_rule(result):
        lines += ["", forgetting_rule(result)]
    measured = measured_rows(result)
    if measured:
        lines += [
            "",
            "## Measured against the plan",
            "",
            "| stage | peak memory | planned | ratio | tokens/s | planned | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {m['stage']} | {m['peak']} | {m['planned']} | {m['memory_ratio']}"
            f"{' ⚠️ warning: over 1.10' if m['warning'] else ''} | {m['tokens']} | {m['planned_tokens']} | "
            f"{m['tokens_ratio']} |"
            for m in measured
        ]
    lines += ["", "## Checks", ""]
    lines += [f"- {'✅' if c['passed'] else '❌'} **{c['name']}**: {c['message']}" for c in result["checks"]]
    if result["diagnostics"]:
        lines += ["", "## Loss-curve diagnostics", ""]
        for d in result["diagnostics"]:
            fix = f" — fix: {d['fix']}" if d.get("fix") else ""
            lines.append(f"- {d['severity'].upper()} `{d['code']}`: {d['message']}{fix}")
    if result.get("curves"):
        lines += ["", "![training curves of every stage](curves.png)"]
    pairs = example_pairs(baseline, tuned)
    if pairs:
        lines += ["", "## Examples", ""]
        for i, p in enumerate(pairs, 1):
            lines += [
                f"### {i}",
                "",
                "Prompt:",
                "",
                _fence(p["prompt"]),
                "Reference:",
                "",
                _fence(p["reference"]),
                f"Baseline (score {p['baseline_score']}):",
                "",
                _fence(p["baseline"]),
                f"Tuned (score {p['tuned_score']}):",
                "",
                _fence(p["tuned"]),
            ]
    return "\n".join(lines).rstrip() + "\n"


def _fence(text: str) -> str:
    return "```text\n" + (text or "").replace("```", "'''") + "\n```\n"


# ----------------------------------------------------------------------------- HTML


@functools.cache
def _template() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from schemas.paths import templates_dir

    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        autoescape=True,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report/gate.html.j2")


def render_html(plan: Plan, result: dict, baseline: dict, tuned: dict, png: Path | None) -> str:
    """report.html: every value decided here; the template lays them out (and escapes them)."""
    target = result["target_score"]
    image = None
    if png is not None and png.is_file():
        image = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")
    return _template().render(
        plan_name=plan.name,
        plan_id=plan.id,
        method=plan.decision.method,
        model=plan.spec.model.name,
        output_model=plan.artifacts.output_model,
        verdict=result["verdict"],
        reasons=result["reasons"],
        metric=result["metric"],
        target=_fmt(target) if target is not None else None,
        declared_baseline=_fmt(result["declared_baseline"]),
        rows=rows(result),
        forgetting_rule=forgetting_rule(result),
        baseline_model=str(baseline.get("model", "")),
        baseline_prompting=str(baseline.get("prompting", "")),
        tuned_model=str(tuned.get("model", "")),
        tuned_prompting=str(tuned.get("prompting", "")),
        checks=result["checks"],
        measured=measured_rows(result),
        diagnostics=result["diagnostics"],
        curves_image=image,
        curves_section=bool(result["diagnostics"]) or png is not None,
        examples=example_pairs(baseline, tuned),
    )
