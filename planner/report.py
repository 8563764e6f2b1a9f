"""The plan as a person reads it: terminal text, markdown (report.md, PR comments), JSON."""

from __future__ import annotations

from schemas.plan import Finding, Plan

GB = 10**9
MEMORY_ROWS = ("weights", "grads", "optimizer", "activations", "logits", "adapters", "reference_model", "kv_cache",
               "overhead")
VERDICT = {"chosen": "CHOSEN", "recommended": "ADVISED", "rejected": "rejected", "not_applicable": "n/a"}


def as_json(plan: Plan) -> str:
    return plan.model_dump_json(indent=2) + "\n"


def _gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def _hours(value: float | None, rng: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}"
    if rng:
        text += f" ({rng[0]:.2f}-{rng[1]:.2f})"
    return text


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...] | None = None) -> list[str]:
    allrows = ([header] if header else []) + rows
    widths = [max(len(r[i]) for r in allrows) for i in range(len(allrows[0]))]
    out = []
    for n, row in enumerate(allrows):
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if header and n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _layout_line(plan: Plan) -> str:
    lay = plan.layout
    if lay.source == "none":
        return "no training"
    parts = [f"{lay.nodes} node{'s' if lay.nodes > 1 else ''} x {lay.gpus_per_node} GPU{'s' if lay.gpus_per_node > 1 else ''}",
             f"TP {lay.tensor_parallel}", f"PP {lay.pipeline_parallel}", f"DP {lay.data_parallel}",
             f"micro batch {lay.micro_batch} x accumulation {lay.grad_accum} = global {lay.global_batch}",
             f"sharding {lay.sharding}", f"checkpointing {'on' if lay.activation_checkpointing else 'off'}",
             lay.precision, f"seq {lay.seq_length}"]
    src = {"pinned": "pinned", "search": "searched"}[lay.source]
    return ", ".join(parts) + f" [{src}]"


def _finding_lines(f: Finding) -> list[str]:
    out = [f"  {f.severity.upper():7} {f.code} ({f.path}): {f.message}"]
    if f.fix:
        out.append(f"          fix: {f.fix}")
    return out


def text(plan: Plan) -> str:
    spec, est, dec = plan.spec, plan.estimate, plan.decision
    status = "FEASIBLE" if plan.feasible else f"NOT FEASIBLE ({len(plan.errors)} error{'s' if len(plan.errors) != 1 else ''})"
    lines = [
        f"plan {plan.id}  goal {spec.goal.name}: {status}",
        f"  {spec.goal.description}",
        f"  model {spec.model.name} ({dec.config_urn or 'no customization config'}), data {spec.data.name} "
        f"({plan.data_stats.training.records:,} training, "
        f"{plan.data_stats.validation.records if plan.data_stats.validation else 'no'} validation), "
        f"inventory {spec.inventory.name} ({spec.inventory.nodes} x {spec.inventory.gpus_per_node} "
        f"{spec.inventory.gpu.display_name})",
        "",
        f"decision: {dec.method}" + (f" (requested {dec.requested})" if dec.requested != "auto" else " (method=auto)")
        + (f", pipeline {' -> '.join(dec.pipeline)}" if len(dec.pipeline) > 1 else ""),
    ]
    lines += _table([(VERDICT[r.verdict], r.reason) for r in dec.rungs])
    if dec.next_step:
        lines += ["", f"next: {dec.next_step}"]
    lines += ["", f"layout: {_layout_line(plan)}"]
    for alt in est.alternatives:
        lines.append(f"  instead of {alt.layout}: {alt.why}")
    mem = est.memory_per_gpu_bytes
    if mem is not None:
        rows = [(k.replace("_", " "), _gb(getattr(mem, k))) for k in MEMORY_ROWS if getattr(mem, k)]
        rows.append(("total", f"{_gb(mem.total)} of {_gb(mem.capacity)} ({mem.total / mem.capacity:.0%})"))
        lines += ["", "memory per GPU:"] + _table(rows)
    if est.gpu_hours is not None:
        lines += ["", "estimate:"]
        rows = [("trainable params", f"{est.trainable_params:,}" if est.trainable_params else "-"),
                ("tokens", f"{est.tokens:,}" if est.tokens else "-"), ("optimizer steps", f"{est.steps:,}"),
                ("FLOPs", f"{est.flops:.2e}" if est.flops else "-"),
                ("GPU-hours", _hours(est.gpu_hours, est.gpu_hours_range)),
                ("wall-hours", _hours(est.wall_hours, est.wall_hours_range))]
        if est.cost_usd is not None:
            rows.append(("cost", f"${est.cost_usd:,.2f} at ${spec.inventory.price_per_gpu_hour:g}/GPU-hour"))
        lines += _table(rows)
        lines += [f"  assumes: {a}" for a in est.assumptions]
    lines += ["", "stages: " + " -> ".join(s.name for s in plan.stages)]
    lines += ["", f"output model: {plan.artifacts.output_model}"]
    order = {"error": 0, "warning": 1, "info": 2}
    findings = sorted(plan.findings, key=lambda f: order[f.severity])
    if findings:
        lines += ["", "findings:"]
        for f in findings:
            lines += _finding_lines(f)
    return "\n".join(lines) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def markdown(plan: Plan) -> str:
    spec, est, dec = plan.spec, plan.estimate, plan.decision
    icon = "✅ feasible" if plan.feasible else f"❌ not feasible ({len(plan.errors)} errors)"
    out = [
        f"# Plan `{plan.id}`: {spec.goal.name}",
        "",
        f"**{icon}**. {_md_escape(spec.goal.description)}",
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
    out += [f"| {r.method} | {r.verdict.replace('_', ' ')} | {_md_escape(r.reason)} |" for r in dec.rungs]
    if dec.next_step:
        out += ["", f"Next: {dec.next_step}"]
    out += ["", "## Layout", "", _layout_line(plan)]
    if est.alternatives:
        out += ["", "| alternative | GPUs | memory/GPU | GPU-hours | why not |", "|---|---|---|---|---|"]
        out += [f"| {a.layout} | {a.gpus} | {_gb(a.memory_per_gpu_bytes)} | {a.gpu_hours:.2f} | {_md_escape(a.why)} |"
                for a in est.alternatives]
    mem = est.memory_per_gpu_bytes
    if mem is not None:
        out += ["", "## Memory per GPU", "", "| part | bytes |", "|---|---|"]
        out += [f"| {k.replace('_', ' ')} | {_gb(getattr(mem, k))} |" for k in MEMORY_ROWS if getattr(mem, k)]
        out.append(f"| **total** | **{_gb(mem.total)}** of {_gb(mem.capacity)} ({mem.total / mem.capacity:.0%}) |")
    if est.gpu_hours is not None:
        out += ["", "## Estimate", "", "| | |", "|---|---|",
                f"| tokens | {est.tokens:,} |" if est.tokens else "| tokens | - |",
                f"| optimizer steps | {est.steps:,} |",
                f"| GPU-hours | {_hours(est.gpu_hours, est.gpu_hours_range)} |",
                f"| wall-hours | {_hours(est.wall_hours, est.wall_hours_range)} |"]
        if est.cost_usd is not None:
            out.append(f"| cost | ${est.cost_usd:,.2f} |")
        out += [""] + [f"- {a}" for a in est.assumptions]
    out += ["", "## Stages", "", "| stage | after | runs |", "|---|---|---|"]
    out += [f"| {s.name} | {', '.join(s.after) or '-'} | `{' '.join(s.argv)}` |" for s in plan.stages]
    if plan.findings:
        order = {"error": 0, "warning": 1, "info": 2}
        out += ["", "## Findings", "", "| severity | code | key | message | fix |", "|---|---|---|---|---|"]
        out += [f"| {f.severity} | `{f.code}` | `{f.path}` | {_md_escape(f.message)} | {_md_escape(f.fix)} |"
                for f in sorted(plan.findings, key=lambda f: order[f.severity])]
    return "\n".join(out) + "\n"


RENDERERS = {"text": text, "markdown": markdown, "json": as_json}
