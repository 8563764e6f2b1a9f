"""Checks of cost: memory per GPU (with the smallest change that fits), the GPU-hour budget, the scheduler's
time limit."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from planner import estimator as est
from planner import layout as layout_mod
from planner.checks.base import Group, finding
from planner.draft import Draft
from schemas.method import TrainMethod
from schemas.plan import Finding, Layout

check = Group()
GB = est.GB


@check("memory-fit")
def _memory(d: Draft, layout: Layout) -> Iterator[Finding]:
    cand = d.candidate
    if d.train is None:
        return
    inv = d.spec.inventory
    capacity = inv.gpu.memory_gb * GB
    usable = capacity * d.spec.knowledge.lints.memory_headroom
    if cand is None:
        yield finding("error", "memory-fit", "inventory", f"no layout on {inv.name} could be evaluated", "")
        return
    total = cand.memory.total
    if total > usable:
        yield finding(
            "error",
            "memory-fit",
            "inventory",
            f"{total / GB:.1f} GB per GPU > {usable / GB:.1f} GB usable ({d.spec.knowledge.lints.memory_headroom:.0%}"
            f" of {inv.gpu.memory_gb:g} GB {inv.gpu.display_name}) with {cand.describe()}",
            _smallest_fix(d, d.train, cand),
        )
    elif total > capacity * (1 - d.spec.knowledge.lints.headroom_warning):
        yield finding(
            "warning",
            "memory-fit",
            "inventory",
            f"{total / GB:.1f} GB per GPU leaves under {d.spec.knowledge.lints.headroom_warning:.0%} of "
            f"{inv.gpu.memory_gb:g} GB free",
            "expect fragmentation OOMs; consider activation checkpointing",
        )
    best = d.layout_result.best_search if d.layout_result else None
    deadline = d.spec.goal.deadline_hours
    if (
        layout.source == "pinned"
        and d.option is not None
        and d.config is not None
        and best is not None
        and total <= usable
        and best.shape.gpus < cand.shape.gpus
        and (deadline is None or best.time.wall_hours <= deadline)
    ):
        yield finding(
            "info",
            "memory-fit",
            "layout",
            f"the estimate fits in fewer GPUs than {d.config.urn} pins: {best.describe()} "
            f"({best.memory.total / GB:.0f} GB per GPU, {best.gpu_hours:.1f} GPU-hours against "
            f"{cand.gpu_hours:.1f})",
            f"to use it: layout.nodes={best.shape.nodes} layout.gpus_per_node={best.shape.gpus_per_node} "
            f"layout.tensor_parallel={best.shape.tp} layout.pipeline_parallel={best.shape.pp}",
        )


def _smallest_fix(d: Draft, train: TrainMethod, cand: layout_mod.Candidate) -> str:
    """Name the smallest change that fits, trying one knob at a time."""
    inv = d.spec.inventory
    base = layout_mod.Context(
        arch=d.spec.model.architecture,
        method=train,
        inventory=inv,
        stats=d.stats,
        prior=d.spec.knowledge.estimator,
        precision=d.precision,
        seq=cand.shape.seq,
        headroom=d.spec.knowledge.lints.memory_headroom,
        engine=d.spec.knowledge.engine,
        attention=cand.shape.attention,
    )
    s = cand.shape
    trials: list[tuple[str, est.Shape]] = []
    if not s.checkpointing:
        trials.append(
            (
                "enable activation checkpointing (layout.activation_checkpointing=true)",
                est.Shape(s.nodes, s.gpus_per_node, s.tp, s.pp, s.micro_batch, s.global_batch, s.seq, s.sharding, True),
            )
        )
    if s.micro_batch > 1:
        trials.append(
            (
                "micro batch 1 (layout.micro_batch=1)",
                est.Shape(s.nodes, s.gpus_per_node, s.tp, s.pp, 1, s.global_batch, s.seq, s.sharding, s.checkpointing),
            )
        )
    engine = base.engine  # without TP for a QLoRA base (layout.Context)
    if s.dp > 1 and s.sharding != "fsdp" and "fsdp" in engine.sharding:
        trials.append(
            (
                "shard with FSDP (layout.sharding=fsdp)",
                est.Shape(
                    s.nodes, s.gpus_per_node, s.tp, s.pp, s.micro_batch, s.global_batch, s.seq, "fsdp", s.checkpointing
                ),
            )
        )
    for tp in (2, 4, 8):
        if tp > s.tp and tp <= inv.gpus_per_node and engine.tensor_parallel:
            gpn = max(s.gpus_per_node, tp * s.pp if s.nodes == 1 else s.gpus_per_node)
            if gpn <= inv.gpus_per_node:
                trials.append(
                    (
                        f"TP={tp} (layout.tensor_parallel={tp} layout.gpus_per_node={gpn})",
                        est.Shape(
                            s.nodes, gpn, tp, s.pp, s.micro_batch, s.global_batch, s.seq, s.sharding, s.checkpointing
                        ),
                    )
                )
    if inv.nodes > s.nodes and "fsdp" in engine.sharding:
        trials.append(
            (
                f"{inv.nodes} nodes with FSDP (layout.nodes={inv.nodes} layout.sharding=fsdp)",
                est.Shape(
                    inv.nodes,
                    inv.gpus_per_node,
                    s.tp,
                    s.pp,
                    s.micro_batch,
                    s.global_batch,
                    s.seq,
                    "fsdp",
                    s.checkpointing,
                ),
            )
        )
    for text, shape in trials:
        if shape.gpus % (shape.tp * shape.pp) or shape.global_batch % (shape.micro_batch * shape.dp):
            continue
        if layout_mod.evaluate(base, shape).fits:
            return text
    if train.finetuning_type != "lora" and train.optimizer == "adamw":
        eight_bit = dataclasses.replace(base, method=train.model_copy(update={"optimizer": "adamw_8bit"}))
        for ckpt in (s.checkpointing, True):
            shape = est.Shape(
                s.nodes, s.gpus_per_node, s.tp, s.pp, s.micro_batch, s.global_batch, s.seq, s.sharding, ckpt
            )
            if layout_mod.evaluate(eight_bit, shape).fits:
                return "8-bit AdamW (method.optimizer=adamw_8bit" + (
                    " layout.activation_checkpointing=true)" if ckpt and not s.checkpointing else ")"
                )
    if train.finetuning_type == "lora" and train.lora.quantization is None and not base.is_cpu:
        # QLoRA is the user's call (a 4-bit base changes the model that trains): suggested, never chosen silently
        qlora = train.model_copy(update={"lora": train.lora.model_copy(update={"quantization": "4bit"})})
        found = layout_mod.search(dataclasses.replace(base, method=qlora), d.spec.layout).chosen
        if found is not None and found.fits:
            return (
                f"QLoRA, a 4-bit NF4 base (method.lora.quantization=4bit; a CUDA GPU and bitsandbytes): "
                f"{found.memory.total / GB:.1f} GB per GPU with {found.describe()}"
            )
    frozen = d.spec.model.architecture.total_params * est.weight_bytes(d.precision)
    if frozen > inv.gpu.memory_gb * GB:
        return (
            f"one {inv.gpu.display_name} cannot hold even the frozen base ({frozen / GB:.0f} GB of weights): "
            "use more GPUs (TP or FSDP), a larger GPU, or a smaller model"
        )
    if d.method_kind != "lora":
        return "use LoRA (method=lora): the frozen base needs 2 bytes per parameter instead of 16"
    return "use a larger GPU or more GPUs"


@check("budget")
def _budget(d: Draft, layout: Layout) -> Iterator[Finding]:
    budget = d.spec.goal.gpu_hour_budget
    cand = d.candidate
    if d.train is None or budget is None or cand is None:
        return
    hours = d.gpu_hours if d.gpu_hours is not None else cand.gpu_hours
    if hours > budget:
        yield finding(
            "error",
            "budget",
            "goal.gpu_hour_budget",
            f"estimated {hours:.1f} GPU-hours > budget {budget:g}",
            "raise goal.gpu_hour_budget, train fewer epochs, or use a cheaper rung (method=auto)",
        )


@check("time-limit")
def _time_limit(d: Draft, layout: Layout) -> Iterator[Finding]:
    cand = d.candidate
    limit = d.spec.inventory.time_limit_hours
    if d.train is None or cand is None or limit is None:
        return
    if cand.time.wall_high > limit:
        yield finding(
            "warning",
            "time-limit",
            "inventory.time_limit_hours",
            f"up to {cand.time.wall_high:.1f} wall-hours > the {limit:g}-hour limit of {d.spec.inventory.name}",
            "the run resumes from its last checkpoint when requeued; or raise the limit",
        )
