"""Values the schema accepts one by one but that make no sense together with the model or the run: a LoRA rank
above the model's hidden size, a warmup longer than the run, more pipeline stages than layers."""

from __future__ import annotations

from collections.abc import Iterator

from planner.checks.base import Group, finding
from planner.draft import Draft
from schemas.plan import Finding, Layout

check = Group()


def _stage_key(stage: str, key: str) -> str:
    """The key path of a stage's recipe value: the user sets the last stage's as method.<key>."""
    return f"method.{key}" if stage == "train" else f"{stage}: method.{key}"


@check("lora-rank-above-hidden")
def _rank_above_hidden(d: Draft, layout: Layout) -> Iterator[Finding]:
    hidden = d.spec.model.architecture.hidden_size
    for stage in d.stages:
        method = stage.method
        lora = getattr(method, "lora", None)
        if getattr(method, "finetuning_type", None) != "lora" or lora is None or lora.adapter_dim <= hidden:
            continue
        largest = 1 << (min(hidden, 256).bit_length() - 1)
        yield finding(
            "error",
            "lora-rank-above-hidden",
            "method.lora.adapter_dim",
            f"LoRA rank {lora.adapter_dim} is above the model's hidden size {hidden}: the adapter cannot be low "
            "rank, and has more parameters than the layers it adapts",
            f"set method.lora.adapter_dim to {largest} or less (ranks of 8-64 are usual)",
        )


@check("warmup-longer-than-run")
def _warmup(d: Draft, layout: Layout) -> Iterator[Finding]:
    for stage in d.stages:
        warmup = getattr(stage.method, "warmup_steps", 0)
        steps = stage.estimate.steps if stage.estimate is not None else None
        if not warmup or not steps or warmup < steps:
            continue
        yield finding(
            "error" if warmup > steps else "warning",
            "warmup-longer-than-run",
            _stage_key(stage.name, "warmup_steps"),
            f"{stage.name}: warmup of {warmup:,} steps for a run of {steps:,} optimizer steps: the learning rate "
            "never reaches its peak",
            f"set method.warmup_steps to {max(0, steps // 10):,} or less (about 10% of the run)",
        )


@check("pipeline-deeper-than-layers")
def _pp_above_layers(d: Draft, layout: Layout) -> Iterator[Finding]:
    layers = d.spec.model.architecture.num_layers
    pinned = d.spec.layout.pipeline_parallel
    if pinned is not None and pinned > layers:
        yield finding(
            "error",
            "pipeline-deeper-than-layers",
            "layout.pipeline_parallel",
            f"{pinned} pipeline stages for a model of {layers} layers: a stage would hold no layer",
            "leave layout.pipeline_parallel null (the planner picks the layout)",
        )
