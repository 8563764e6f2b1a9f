"""The plan as a person reads it: terminal text, markdown (report.md, PR comments), JSON.

Text keeps to WIDTH columns (long lines wrap under their own indent). Both readable reports show
each training stage's resolved recipe, every value marked by where it came from (the stage's
method_sources): MARKS["override"] for the user's override, MARKS["recommended"] for the model's
customization config; unmarked values are schema defaults or derived by the planner. JSON is the
plan itself.
"""

from __future__ import annotations

import textwrap
from typing import Any

from schemas.plan import Finding, Layout, Plan, Stage

GB = 10**9
MEMORY_ROWS = ("weights", "grads", "optimizer", "activations", "logits", "adapters", "reference_model", "kv_cache",
               "overhead")
VERDICT = {"chosen": "CHOSEN", "recommended": "ADVISED", "rejected": "rejected", "not_applicable": "n/a"}
WIDTH = 100  # the text report's columns
MARKS = {"override": "*", "recommended": "†"}


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


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...] | None = None, indent: str = "  ") -> list[str]:
    """Aligned columns; a last column that runs past WIDTH wraps under itself."""
    allrows = ([header] if header else []) + rows
    widths = [max(len(r[i]) for r in allrows) for i in range(len(allrows[0]))]
    start = len(indent) + sum(w + 2 for w in widths[:-1])
    hang = " " * (start if start <= WIDTH // 2 else len(indent) + 4)
    out = []
    for n, row in enumerate(allrows):
        line = (indent + "  ".join(c.ljust(w) for c, w in zip(row, widths))).rstrip()
        out += _wrap(line, hang)
        if header and n == 0:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


def _wrap(line: str, hang: str | None = None) -> list[str]:
    """One line, wrapped at WIDTH; continuation lines start with `hang` (default: its indent + 2)."""
    if len(line) <= WIDTH:
        return [line]
    lead = line[: len(line) - len(line.lstrip())]
    return textwrap.wrap(line[len(lead):], WIDTH, initial_indent=lead,
                         subsequent_indent=lead + "  " if hang is None else hang,
                         break_long_words=False, break_on_hyphens=False) or [line]


def _layout_line(plan: Plan) -> str:
    return _layout_text(plan.layout, full=True)


def _layout_text(lay: Layout | None, full: bool) -> str:
    """The layout on one line: `full` for the plan's (batch split, how it was found), else a stage's short one
    (the recipe shows the batch split beside it)."""
    if lay is None or lay.source == "none":
        return "no training"
    where = (f"{lay.nodes} node{'s' if lay.nodes > 1 else ''} x "
             f"{lay.gpus_per_node} GPU{'s' if lay.gpus_per_node > 1 else ''}")
    if full:
        parts = [where, f"TP {lay.tensor_parallel}", f"PP {lay.pipeline_parallel}", f"DP {lay.data_parallel}",
                 f"micro batch {lay.micro_batch} x accumulation {lay.grad_accum} = global {lay.global_batch}"]
    else:
        parts = [where, f"TP {lay.tensor_parallel} PP {lay.pipeline_parallel} DP {lay.data_parallel}"]
    parts += [f"sharding {lay.sharding}", f"checkpointing {'on' if lay.activation_checkpointing else 'off'}",
              lay.precision]
    if not full:  # the recipe's max_seq_length row has the sequence length
        return ", ".join(parts)
    parts.append(f"seq {lay.seq_length}")
    src = {"pinned": "pinned", "search": "searched"}[lay.source]
    return ", ".join(parts) + f" [{src}]"


def _finding_lines(f: Finding) -> list[str]:
    out = _wrap(f"  {f.severity.upper():7} {f.code} ({f.path}): {f.message}", " " * 10)
    if f.fix:
        out += _wrap(f"          fix: {f.fix}", " " * 15)
    return out


# --- the recipe: each training stage's resolved method --------------------------------------------


def _num(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_num(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_num(v)}" for k, v in value.items())
    return str(value)


def _shown(value: Any) -> str:
    """A value as the recipe shows it: the shipped replay text as builtin:<name>, numbers short."""
    if isinstance(value, str) and value.endswith("/corpus.txt"):
        from planner.paths import samples_dir

        path = samples_dir() / value.rsplit("/", 2)[-2] / "corpus.txt"
        if value == str(path):
            return "builtin:" + path.parent.name
    return _num(value)


def _lookup(values: Any, key: str) -> Any:
    for part in key.split("."):
        if values is None:
            return None
        values = values.get(part) if isinstance(values, dict) else getattr(values, part, None)
    return values


def source_of(stage: Stage, key: str) -> str:
    """Where a method value came from: its own key's source, else the nearest parent's (`replay` for
    replay.data when the whole block was set); '' when the plan does not say."""
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        found = stage.method_sources.get(".".join(parts[:n]))
        if found:
            return found
    return ""


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _same(a: Any, b: Any) -> bool:
    def norm(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return tuple(norm(x) for x in v)
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return _shown(v) if isinstance(v, str) else v

    return norm(a) == norm(b)


def _recommended_tree(plan: Plan, stage: Stage) -> dict[str, Any]:
    urn = plan.decision.config_urn
    config = plan.spec.model.find_config(urn) if urn else None
    if config is None or stage.method is None:
        return {}
    return dict(config.defaults.get(stage.method.kind, {}))


def overridden(plan: Plan, stage: Stage) -> list[tuple[str, Any, Any]]:
    """(key, value used, value recommended) for each recommended value a user override replaced."""
    if stage.method is None:
        return []
    used, rec_tree = stage.method.model_dump(mode="json"), _recommended_tree(plan, stage)
    out: dict[str, tuple[str, Any, Any]] = {}
    for key in _flat(rec_tree):
        parts = key.split(".")
        at = next((".".join(parts[:n]) for n in range(len(parts), 0, -1)
                   if ".".join(parts[:n]) in stage.method_sources), key)
        if stage.method_sources.get(at) != "override" or at in out:
            continue
        rec, value = _lookup(rec_tree, at), _lookup(used, at)
        if not _same(rec, value):
            out[at] = (at, value, rec)
    return list(out.values())


class _Marker:
    """Shows a stage's method values with their source marks (markdown escapes `*`)."""

    def __init__(self, stage: Stage, md: bool):
        self.stage, self.md = stage, md

    def __call__(self, key: str, shown: str | None = None) -> str:
        text_ = _shown(_lookup(self.stage.method, key)) if shown is None else shown
        mark = MARKS.get(source_of(self.stage, key), "")
        if self.md:
            text_, mark = _md_escape(text_), mark.replace("*", "\\*")
        return text_ + mark


def _adapters(method: Any) -> bool:
    return method.kind == "lora" or getattr(method, "finetuning_type", "") == "lora"


def stage_title(stage: Stage, md: bool = False) -> str:
    m, v = stage.method, _Marker(stage, md)
    assert m is not None
    what = "LoRA adapters" if _adapters(m) else "all weights"
    if m.kind in ("dpo", "grpo"):
        what = v("finetuning_type", what)
    return f"{m.kind}, {what}"


def recipe_rows(stage: Stage, md: bool = False) -> list[tuple[str, str]]:
    """(label, value) rows of one training stage's recipe, values marked by source."""
    m, v, lay, est = stage.method, _Marker(stage, md), stage.layout, stage.estimate
    assert m is not None
    floor = v("min_learning_rate", _num(m.effective_min_lr))
    if source_of(stage, "min_learning_rate") in ("derived", "default", ""):
        floor += " (0.1 x lr)" if abs(m.effective_min_lr - 0.1 * m.learning_rate) <= 1e-12 else ""
    rows = [("learning rate", f"{v('learning_rate')}, cosine to {floor}, warmup {v('warmup_steps')} steps")]
    epochs = f"{v('epochs')}" + (f", max_steps {v('max_steps')}" if m.max_steps else "")
    if est is not None and est.steps:
        epochs += f" ({est.steps:,} optimizer steps)"
    rows.append(("epochs", epochs))
    rows.append(("validation", f"every {v('val_check_interval')} epoch, early stopping: patience "
                               f"{v('early_stopping.patience')}, min delta {v('early_stopping.min_delta')}"))
    if lay is not None and lay.source != "none":
        batch = (f"{v('batch_size', str(lay.global_batch))} = micro batch {v('micro_batch_size', str(lay.micro_batch))}"
                 f" x accumulation {lay.grad_accum} x DP {lay.data_parallel}")
    else:
        batch = v("batch_size")
    rows.append(("global batch", batch))
    rows.append(("optimizer", f"{v('optimizer')}, weight decay {v('weight_decay')}, seed {v('seed')}"))
    rows.append(("max_seq_length", v("max_seq_length") + (f", packing {v('sequence_packing')}"
                                                         if m.sequence_packing else "")))
    if _adapters(m):
        rows.append(("LoRA", f"rank {v('lora.adapter_dim')}, alpha {v('lora.alpha', str(m.lora.effective_alpha))}, "
                             f"dropout {v('lora.adapter_dropout')}, targets {v('lora.target_modules')}"))
    if m.kind == "dpo":
        rows.append(("DPO", f"beta {v('beta')}, reference {v('reference', m.effective_reference)}, "
                            f"SFT loss weight {v('sft_loss_weight')}, preference loss weight "
                            f"{v('preference_loss_weight')}"))
        if m.sft_base:
            rows.append(("SFT base", v("sft_base")))
    if m.kind == "grpo":
        rows.append(("GRPO", f"{v('num_generations_per_prompt')} generations per prompt, completion length "
                             f"{v('max_completion_length')} tokens, temperature {v('temperature')}, "
                             f"KL beta {v('kl_beta')}"))
        rows.append(("rewards", f"{v('rewards')} (generation: {v('generation_backend')}"
                                + (f", cold start SFT {v('cold_start_sft')})" if m.cold_start_sft else ")")))
    if m.kind in ("lora", "sft"):
        replay = (f"{v('replay.data')} x {v('replay.ratio')} per task record" if m.replay is not None
                  else v("replay", "none"))
        rows.append(("replay", replay))
    rows.append(("layout", _layout_text(lay, full=False)))
    if est is not None:
        mem = est.memory_per_gpu_bytes
        if mem is not None:
            share = f" ({mem.total / mem.capacity:.0%})" if mem.capacity else ""
            rows.append(("memory per GPU", f"{_gb(mem.total)} of {_gb(mem.capacity)}{share}"))
        if est.gpu_hours is not None:
            rows.append(("GPU-hours", _hours(est.gpu_hours, est.gpu_hours_range)))
    return rows


def _override_line(key: str, used: Any, rec: Any, md: bool = False) -> str:
    if md:
        return f"`method.{key}` {_md_escape(_shown(used))} overrides the recommended {_md_escape(_shown(rec))}"
    return f"method.{key} {_shown(used)} overrides the recommended {_shown(rec)}"


def _legend(plan: Plan, md: bool = False) -> str:
    urn = plan.decision.config_urn
    by = (f"`{urn}`" if md else urn) if urn else "the model's customization config"
    star = "\\" + MARKS["override"] if md else MARKS["override"]
    return f"{star} override, {MARKS['recommended']} recommended by {by}; unmarked: default or derived"


def recipe_text(plan: Plan) -> list[str]:
    stages = plan.training_stages
    if not stages:
        return []
    out = ["", "recipe per training stage:", *_wrap(f"  ({_legend(plan)})", "   ")]
    for stage in stages:
        out.append(f"  {stage.name}: {stage_title(stage)}")
        out += _table(recipe_rows(stage), indent="    ")
        for key, used, rec in overridden(plan, stage):
            out += _wrap(f"    {_override_line(key, used, rec)}", "      ")
    return out


def recipe_markdown(plan: Plan) -> list[str]:
    stages = plan.training_stages
    if not stages:
        return []
    out = ["", "## Recipe", "", f"Marks: {_legend(plan, md=True)}."]
    for stage in stages:
        out += ["", f"### `{stage.name}`: {stage_title(stage, md=True)}", "", "| | |", "|---|---|"]
        out += [f"| {label} | {value} |" for label, value in recipe_rows(stage, md=True)]
        lines = overridden(plan, stage)
        if lines:
            out += [""] + [f"- {_override_line(k, u, r, md=True)}" for k, u, r in lines]
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
    lines += recipe_text(plan)
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
    return "\n".join(w for line in lines for w in _wrap(line)) + "\n"


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
    out += recipe_markdown(plan)
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
