"""The recipe section of the plan reports: each training stage's resolved method, as text or markdown.

Every value is marked by where it came from (the stage's method_sources): MARKS["override"] for the
user's override, MARKS["recommended"] for the model's customization config; unmarked values are
schema defaults or derived by the planner. A recommended value an override replaced gets a line of
its own (overridden).
"""

from __future__ import annotations

from typing import Any

from planner.methods import rules
from planner.report_format import gb, hours, layout_text, md_escape, table, wrap
from schemas.plan import Plan, Stage

MARKS = {"override": "*", "recommended": "†"}


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
        at = next(
            (".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in stage.method_sources), key
        )
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
            text_, mark = md_escape(text_), mark.replace("*", "\\*")
        return text_ + mark


def _adapters(method: Any) -> bool:
    return method.kind == "lora" or getattr(method, "finetuning_type", "") == "lora"


def stage_title(stage: Stage, md: bool = False) -> str:
    m, v = stage.method, _Marker(stage, md)
    assert m is not None
    what = "LoRA adapters" if _adapters(m) else "all weights"
    if "finetuning_type" in type(m).model_fields:  # the methods that train adapters or all weights by choice
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
    rows.append(
        (
            "validation",
            f"every {v('val_check_interval')} epoch, early stopping: patience "
            f"{v('early_stopping.patience')}, min delta {v('early_stopping.min_delta')}",
        )
    )
    if lay is not None and lay.source != "none":
        batch = (
            f"{v('batch_size', str(lay.global_batch))} = micro batch {v('micro_batch_size', str(lay.micro_batch))}"
            f" x accumulation {lay.grad_accum} x DP {lay.data_parallel}"
        )
    else:
        batch = v("batch_size")
    rows.append(("global batch", batch))
    rows.append(("optimizer", f"{v('optimizer')}, weight decay {v('weight_decay')}, seed {v('seed')}"))
    rows.append(
        ("max_seq_length", v("max_seq_length") + (f", packing {v('sequence_packing')}" if m.sequence_packing else ""))
    )
    if _adapters(m):
        rows.append(
            (
                "LoRA",
                f"rank {v('lora.adapter_dim')}, alpha {v('lora.alpha', str(m.lora.effective_alpha))}, "
                f"dropout {v('lora.adapter_dropout')}, targets {v('lora.target_modules')}",
            )
        )
    rows.extend(rules(m).recipe_rows(m, v))
    rows.append(("layout", layout_text(lay, full=False)))
    if est is not None:
        mem = est.memory_per_gpu_bytes
        if mem is not None:
            share = f" ({mem.total / mem.capacity:.0%})" if mem.capacity else ""
            rows.append(("memory per GPU", f"{gb(mem.total)} of {gb(mem.capacity)}{share}"))
        if est.gpu_hours is not None:
            rows.append(("GPU-hours", hours(est.gpu_hours, est.gpu_hours_range)))
    return rows


def _override_line(key: str, used: Any, rec: Any, md: bool = False) -> str:
    if md:
        return f"`method.{key}` {md_escape(_shown(used))} overrides the recommended {md_escape(_shown(rec))}"
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
    out = ["", "recipe per training stage:", *wrap(f"  ({_legend(plan)})", "   ")]
    for stage in stages:
        out.append(f"  {stage.name}: {stage_title(stage)}")
        out += table(recipe_rows(stage), indent="    ")
        for key, used, rec in overridden(plan, stage):
            out += wrap(f"    {_override_line(key, used, rec)}", "      ")
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
