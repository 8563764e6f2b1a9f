"""The plan as a person reads it: terminal text, markdown (report.md, PR comments), JSON.

Text keeps to planner.report_format.WIDTH columns (long lines wrap under their own indent). Both
readable reports show each training stage's resolved recipe, every value marked by where it came
from (planner.report_recipe). JSON is the plan itself.
"""

from __future__ import annotations

from planner.printable import json_safe, printable
from planner.report_format import gb, hours, layout_line, md_escape, table, wrap
from planner.report_recipe import recipe_markdown, recipe_text
from schemas.plan import Finding, Plan

MEMORY_ROWS = (
    "weights",
    "grads",
    "optimizer",
    "activations",
    "logits",
    "adapters",
    "reference_model",
    "kv_cache",
    "overhead",
)


def memory_rows(mem) -> list[tuple[str, str]]:
    """(part, size) rows of a memory breakdown: the terms, what the backward overlaps, a set-up peak over training."""
    rows = [(k.replace("_", " "), gb(getattr(mem, k))) for k in MEMORY_ROWS if getattr(mem, k)]
    if mem.backward_overlap:
        rows.append(("backward overlap", f"-{gb(mem.backward_overlap)} (gradients written as activations are freed)"))
    if mem.gradient_buffers:
        rows.append(("gradient buffers", f"{gb(mem.gradient_buffers)} (the embedding's new gradient, at the end)"))
    if mem.load and mem.load + mem.overhead >= mem.total:
        rows.append(("loading", f"{gb(mem.load)} + overhead: the peak (the checkpoint file mapped beside the weights)"))
    return rows


VERDICT = {"chosen": "CHOSEN", "recommended": "ADVISED", "rejected": "rejected", "not_applicable": "n/a"}


def as_json(plan: Plan) -> str:
    return json_safe(plan.model_dump_json(indent=2) + "\n")


def _finding_lines(f: Finding) -> list[str]:
    out = wrap(f"  {f.severity.upper():7} {f.code} ({f.path}): {f.message}", " " * 10)
    if f.fix:
        out += wrap(f"          fix: {f.fix}", " " * 15)
    return out


def text(plan: Plan) -> str:
    spec, est, dec = plan.spec, plan.estimate, plan.decision
    status = (
        "FEASIBLE"
        if plan.feasible
        else f"NOT FEASIBLE ({len(plan.errors)} error{'s' if len(plan.errors) != 1 else ''})"
    )
    lines = [
        f"plan {plan.id}  goal {spec.goal.name}: {status}",
        f"  {spec.goal.description}",
        f"  model {spec.model.name} ({dec.config_urn or 'no customization config'}), data {spec.data.name} "
        f"({plan.data_stats.training.records:,} training, "
        f"{plan.data_stats.validation.records if plan.data_stats.validation else 'no'} validation), "
        f"inventory {spec.inventory.name} ({spec.inventory.nodes} x {spec.inventory.gpus_per_node} "
        f"{spec.inventory.gpu.display_name})",
        "",
        f"decision: {dec.method}"
        + (f" (requested {dec.requested})" if dec.requested != "auto" else " (method=auto)")
        + (f", pipeline {' -> '.join(dec.pipeline)}" if len(dec.pipeline) > 1 else ""),
    ]
    lines += table([(VERDICT[r.verdict], r.reason) for r in dec.rungs])
    if dec.next_step:
        lines += ["", f"next: {dec.next_step}"]
    lines += recipe_text(plan)
    lines += ["", f"layout: {layout_line(plan)}"]
    for alt in est.alternatives:
        lines.append(f"  instead of {alt.layout}: {alt.why}")
    mem = est.memory_per_gpu_bytes
    if mem is not None:
        rows = memory_rows(mem)
        rows.append(("total", f"{gb(mem.total)} of {gb(mem.capacity)} ({mem.total / mem.capacity:.0%})"))
        lines += ["", "memory per GPU:", *table(rows)]
    if est.gpu_hours is not None:
        lines += ["", "estimate:"]
        rows = [
            ("trainable params", f"{est.trainable_params:,}" if est.trainable_params else "-"),
            ("tokens", f"{est.tokens:,}" if est.tokens else "-"),
            ("optimizer steps", f"{est.steps:,}"),
            ("FLOPs", f"{est.flops:.2e}" if est.flops else "-"),
            ("GPU-hours", hours(est.gpu_hours, est.gpu_hours_range)),
            ("wall-hours", hours(est.wall_hours, est.wall_hours_range)),
        ]
        if est.cost_usd is not None:
            rows.append(("cost", f"${est.cost_usd:,.2f} at ${spec.inventory.price_per_gpu_hour:g}/GPU-hour"))
        lines += table(rows)
        lines += [f"  assumes: {a}" for a in est.assumptions]
    lines += ["", "stages: " + " -> ".join(s.name for s in plan.stages)]
    lines += ["", f"output model: {plan.artifacts.output_model}"]
    order = {"error": 0, "warning": 1, "info": 2}
    findings = sorted(plan.findings, key=lambda f: order[f.severity])
    if findings:
        lines += ["", "findings:"]
        for f in findings:
            lines += _finding_lines(f)
    return printable("\n".join(w for line in lines for w in wrap(line)) + "\n")


def markdown(plan: Plan) -> str:
    spec, est, dec = plan.spec, plan.estimate, plan.decision
    icon = "✅ feasible" if plan.feasible else f"❌ not feasible ({len(plan.errors)} errors)"
    out = [
        f"# Plan `{plan.id}`: {spec.goal.name}",
        "",
        f"**{icon}**. {md_escape(spec.goal.description)}",
        "",
        f"- Model: `{spec.model.name}` (config `{dec.config_urn or 'none'}`)",
        f"- Data: `{spec.data.name}`: {plan.data_stats.training.records:,} training records"
        + (f", {plan.data_stats.validation.records:,} validation" if plan.data_stats.validation else ""),
        f"- Inventory: `{spec.inventory.name}`: {spec.inventory.nodes} x {spec.inventory.gpus_per_node} "
        f"{spec.inventory.gpu.display_name}",
        f"- Output model: `{plan.artifacts.output_model}`",
        "",
        f"## Decision: {dec.method}" + (f" (requested `{dec.requested}`)" if dec.requested != "auto" else ""),
        "",
        "| rung | verdict | reason |",
        "|---|---|---|",
    ]
    out += [f"| {r.method} | {r.verdict.replace('_', ' ')} | {md_escape(r.reason)} |" for r in dec.rungs]
    if dec.next_step:
        out += ["", f"Next: {dec.next_step}"]
    out += recipe_markdown(plan)
    out += ["", "## Layout", "", layout_line(plan)]
    if est.alternatives:
        out += ["", "| alternative | GPUs | memory/GPU | GPU-hours | why not |", "|---|---|---|---|---|"]
        out += [
            f"| {a.layout} | {a.gpus} | {gb(a.memory_per_gpu_bytes)} | {a.gpu_hours:.2f} | {md_escape(a.why)} |"
            for a in est.alternatives
        ]
    mem = est.memory_per_gpu_bytes
    if mem is not None:
        out += ["", "## Memory per GPU", "", "| part | bytes |", "|---|---|"]
        out += [f"| {part} | {md_escape(size)} |" for part, size in memory_rows(mem)]
        out.append(f"| **total** | **{gb(mem.total)}** of {gb(mem.capacity)} ({mem.total / mem.capacity:.0%}) |")
    if est.gpu_hours is not None:
        out += [
            "",
            "## Estimate",
            "",
            "| | |",
            "|---|---|",
            f"| tokens | {est.tokens:,} |" if est.tokens else "| tokens | - |",
            f"| optimizer steps | {est.steps:,} |",
            f"| GPU-hours | {hours(est.gpu_hours, est.gpu_hours_range)} |",
            f"| wall-hours | {hours(est.wall_hours, est.wall_hours_range)} |",
        ]
        if est.cost_usd is not None:
            out.append(f"| cost | ${est.cost_usd:,.2f} |")
        out += [""] + [f"- {a}" for a in est.assumptions]
    out += ["", "## Stages", "", "| stage | after | runs |", "|---|---|---|"]
    out += [f"| {s.name} | {', '.join(s.after) or '-'} | `{' '.join(s.argv)}` |" for s in plan.stages]
    if plan.findings:
        order = {"error": 0, "warning": 1, "info": 2}
        out += ["", "## Findings", "", "| severity | code | key | message | fix |", "|---|---|---|---|---|"]
        out += [
            f"| {f.severity} | `{f.code}` | `{f.path}` | {md_escape(f.message)} | {md_escape(f.fix)} |"
            for f in sorted(plan.findings, key=lambda f: order[f.severity])
        ]
    return printable("\n".join(out) + "\n")


RENDERERS = {"text": text, "markdown": markdown, "json": as_json}
