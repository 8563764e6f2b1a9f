"""Checks of the customization config: the URN in model.config, a derived config, the config's GPU class, its
training options."""

from __future__ import annotations

from collections.abc import Iterator

from planner import derive
from planner.checks.base import Group, finding
from planner.draft import Draft
from schemas.model import TrainingOption
from schemas.plan import Finding, Layout

check = Group()


@check("config-urn-invalid")
def _urn_invalid(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.selection.problem == "config-urn-invalid":
        yield finding(
            "error",
            "config-urn-invalid",
            "model.config",
            d.selection.detail,
            f"use one of: {', '.join(d.spec.model.urns)}",
        )


@check("config-urn-version")
def _urn_version(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.selection.problem == "config-urn-version":
        yield finding(
            "error",
            "config-urn-version",
            "model.config",
            f"config URN {d.spec.model.config!r} carries no version; a run must pin one",
            f"use a versioned URN: {', '.join(d.spec.model.urns)}",
        )


@check("config-urn-unknown")
def _urn_unknown(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.selection.problem == "config-urn-unknown":
        yield finding(
            "error",
            "config-urn-unknown",
            "model.config",
            f"{d.spec.model.config!r} is not a customization config of {d.spec.model.name}",
            f"use one of: {', '.join(d.spec.model.urns)}",
        )


@check("config-none-for-gpu")
def _none_for_gpu(d: Draft, layout: Layout) -> Iterator[Finding]:
    model, gpu = d.spec.model, d.spec.inventory.gpu
    if model.config is None and d.config_source == "foreign":
        yield finding(
            "info",
            "config-none-for-gpu",
            "model.config",
            f"{model.name} has no customization config for {gpu.display_name} (classes "
            f"{', '.join(gpu.classes)}); the layout is searched, and {model.configs[0].urn} gives the "
            "sequence length and template",
            "add a config for this GPU class to the model's catalog entry to pin published training options",
        )


@check("config-derived")
def _derived(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.config is None or d.config_source != "derived":
        return
    gpu = d.spec.inventory.gpu
    listed: dict[tuple[str, str], TrainingOption] = {
        (o.training_type, o.finetuning_type): o for o in d.config.training_options
    }
    groups: dict[str, list[str]] = {}  # "1 GPU": ["sft/lora", ...], in the order of derive.PAIRS
    for pair in derive.PAIRS:
        opt = listed.get(pair)
        groups.setdefault(_option_text(opt) if opt else "no plain layout fits (searched)", []).append("/".join(pair))
    parts = [f"{where}: {', '.join(pairs)}" for where, pairs in groups.items()]
    yield finding(
        "warning",
        "config-derived",
        "model.configs",
        f"{d.spec.model.name} has no customization config: the planner derived {d.config.urn} for "
        f"{gpu.display_name}, the fewest GPUs its memory estimate fits at sequence {d.config.max_seq_length}, "
        f"micro batch 1 (not published, not measured): {'; '.join(parts)}",
        "check it with a short run; to pin training options of your own, add a configs: list to the model's YAML "
        "(as conf/model/*.yaml do)",
    )


def _option_text(opt: TrainingOption) -> str:
    gpus = opt.num_gpus * opt.num_nodes
    text = f"{opt.num_nodes} nodes x {opt.num_gpus}" if opt.num_nodes > 1 else f"{gpus} GPU{'s' if gpus > 1 else ''}"
    return text + "".join(
        f" {name}{n}" for name, n in (("TP", opt.tensor_parallel_size), ("PP", opt.pipeline_parallel_size)) if n > 1
    )


@check("config-gpu-class")
def _gpu_class(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.config is None or d.config_source != "explicit":
        return
    gpu = d.spec.inventory.gpu
    cls = d.config.parsed.gpu_class
    if cls not in gpu.classes:
        fitting = [u for u in d.spec.model.urns if u.rsplit("+", 1)[-1] in gpu.classes]
        yield finding(
            "error",
            "config-gpu-class",
            "model.config",
            f"{d.config.urn} is for {cls}-class GPUs; inventory {d.spec.inventory.name} has "
            f"{gpu.display_name} ({', '.join(gpu.classes)})",
            f"use {' or '.join(fitting)}"
            if fitting
            else "pick an inventory with that GPU class, or model.config=null to search a layout",
        )


@check("finetuning-type-unsupported")
def _finetuning_type(d: Draft, layout: Layout) -> Iterator[Finding]:
    # A derived config lists what fits; the memory checks say what does not.
    if (
        d.train is None
        or d.config is None
        or d.config_source in ("foreign", "derived")
        or not d.config.training_options
    ):
        return
    for kind in d.pipeline:
        method = d.train if kind == d.method_kind else None
        tt = method.training_type if method else ("sft" if kind in ("sft", "lora") else kind)
        ft = method.finetuning_type if method else ("lora" if kind == "lora" else "all_weights")
        if d.config.option(tt, ft) is None:
            listed = ", ".join(sorted({f"{o.training_type}/{o.finetuning_type}" for o in d.config.training_options}))
            yield finding(
                "error",
                "finetuning-type-unsupported",
                "method.kind" if method else "method.sft_base",
                f"{d.config.urn} does not list training_type={tt}, finetuning_type={ft} (it lists {listed})",
                "choose a listed combination (e.g. method=lora), or a model whose config supports it",
            )
