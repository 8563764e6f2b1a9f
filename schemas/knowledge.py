"""Knowledge tables as data: data floors, the ladder's rules, lint thresholds, estimator priors.

The values live in conf/knowledge/; these models only say their shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Frozen
from schemas.goal import GapKind
from schemas.method import TrainKind

RungKind = Literal["prompting", "rag", TrainKind]
RungCheck = Literal["gap", "baseline", "format", "soft_floor", "hot_swap", "fits", "budget"]
ShardingLevel = Literal["none", "zero1", "zero2", "fsdp"]


class Floors(Frozen):
    """Two floors per method: below `soft` it works but is unreliable; below `hard` it cannot learn."""

    soft: int = Field(ge=0)
    hard: int = Field(ge=0)
    unit: str = "examples"

    @model_validator(mode="after")
    def _ordered(self) -> Floors:
        if self.hard > self.soft:
            raise ValueError(f"hard floor {self.hard} is above the soft floor {self.soft}")
        return self


class RungRule(Frozen):
    """One rung of the ladder: what it addresses, what it needs, what it costs to serve."""

    method: RungKind
    gaps: tuple[GapKind, ...] = Field(description="Gap kinds this rung can close.")
    formats: tuple[str, ...] = Field((), description="Data formats it trains on; empty: none needed.")
    redeploy: bool = Field(description="The result needs a new serving deployment.")
    checks: tuple[RungCheck, ...] = Field(description="Conditions evaluated in order; the first failure rejects.")
    best_when: str = Field(description="The seed's 'best when', quoted in the reasons.")
    next_step: str = Field("", description="What to do after choosing this rung (no-training rungs).")


class Lints(Frozen):
    """Thresholds of the hyperparameter lints, each from a known failure mode."""

    lora_lr_max: float = Field(1e-3, description="LoRA lr at or above this diverges val loss after 2-3 epochs.")
    adapter_dim_limits: tuple[tuple[int, int], ...] = Field(
        ((500, 16), (5000, 64)), description="(examples up to, largest adapter_dim that does not overfit)."
    )
    holdout_fraction: float = Field(0.1, gt=0, lt=1)
    memory_headroom: float = Field(0.9, gt=0, le=1, description="Usable fraction of device memory.")
    headroom_warning: float = Field(0.1, ge=0, lt=1, description="Warn when less than this is left.")

    def holdout(self, n: int) -> int:
        """Examples held out for validation when there is no validation/ (at least one)."""
        return max(1, int(n * self.holdout_fraction)) if n else 0


class Estimator(Frozen):
    """Priors of the estimator; docs/estimator.md says where each comes from."""

    mfu: float = Field(0.30, gt=0, le=1)
    mfu_low: float = Field(0.20, gt=0, le=1)
    mfu_high: float = Field(0.40, gt=0, le=1)
    chars_per_token: float = Field(4.0, gt=0)
    runtime_overhead_gb: float = Field(2.0, ge=0, description="CUDA context, allocator fragmentation, buffers.")
    cpu_runtime_overhead_gb: float = Field(
        0.6,
        ge=0,
        description="A CPU training process before the model: torch, transformers, trl and peft "
        "imported, the dataset, allocator arenas.",
    )
    load_minutes: float = Field(3.0, ge=0, description="Model load and setup per stage launch.")
    eval_fraction: float = Field(0.1, ge=0, description="Eval cost per epoch as a fraction of training.")
    checkpoint_gb_per_minute: float = Field(
        60.0,
        gt=0,
        description="Checkpoint write throughput to the bundle's storage: prices checkpoint writes in the wall "
        "time, and sizes how long before its time limit a training stage is told to stop (stage.stop).",
    )
    stop_margin_seconds: float = Field(
        60.0,
        ge=0,
        description="Added to one step and one checkpoint write when sizing a training stage's stop lead "
        "(Slurm --signal, torchrun --shutdown-timeout): the process exit, the status write and the requeue.",
    )
    seq_margin: float = Field(
        1.25,
        ge=1,
        description="Sequence length = longest record's estimated tokens x this (chars/4 is an estimate) "
        "+ the prompt format's tokens, capped by the config.",
    )
    chat_template_tokens: int = Field(
        48, ge=0, description="Tokens a chat template adds to a record (role headers, a default system prompt)."
    )
    generation_tokens_per_second: float = Field(
        2000.0, gt=0, description="GRPO rollout throughput per GPU for an 8B model (scaled by size)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Estimator:
        if not self.mfu_low <= self.mfu <= self.mfu_high:
            raise ValueError("need mfu_low <= mfu <= mfu_high")
        return self


class Engine(Frozen):
    """What the torch runtime executes (runtime/parallel.py `Parallel`); only that is planned.

    The layout search reads it, the estimator prices each sharding level as it runs, and a pin
    outside it is an error finding. Change it here when the runtime learns more."""

    pipeline_parallel: bool = Field(
        False,
        description="Pipeline-parallel stages (PP > 1) run. false: the runtime has no pipeline schedule (every "
        "process holds all layers), so no layout with PP > 1 is planned; a published option with PP > 1 is planned as "
        "the nearest layout without it.",
    )
    tensor_parallel: bool = Field(
        True,
        description="Tensor parallel (TP > 1, within a node) runs: transformers shards each layer by the "
        "model's tp_plan (DistributedConfig(tp_size)); the other processes replicate or shard data-parallel.",
    )
    sharding: tuple[ShardingLevel, ...] = Field(
        ("none", "zero2", "fsdp"),
        min_length=1,
        description="Data-parallel sharding levels that run, each priced as what runs. none: DDP, every replica "
        "holds all weights, grads and optimizer state. zero2: FSDP2 with reshard_after_forward=False, grads and "
        "optimizer state sharded, parameters gathered from forward to backward (priced as ZeRO-2: whole weights). "
        "fsdp: FSDP2 full sharding, parameters sharded too and gathered a layer at a time. zero1 (optimizer state "
        "only) has no runtime path of its own.",
    )
    sharding_at_load: tuple[ShardingLevel, ...] = Field(
        ("none", "fsdp"),
        min_length=1,
        description="The levels that run where the model is sharded as it loads: with TP > 1, and on CPU "
        "(accelerate runs FSDP only on GPU backends). transformers' DistributedConfig applies FSDP2 with "
        "reshard_after_forward=True there, so zero2 would run as fsdp; only these levels are planned for such layouts.",
    )

    flash_attention_2: tuple[float, ...] = Field(
        (8.0, 8.6, 8.7, 8.9, 9.0),
        min_length=1,
        description="CUDA compute capabilities flash-attn 2 supports (Ampere, Ada, Hopper, per its README): "
        "layout.attention_implementation=auto picks flash_attention_2 on these, sdpa elsewhere. Below the lowest "
        "the kernels refuse to run (an error); a newer GPU not listed is a warning.",
    )

    @model_validator(mode="after")
    def _runs_unsharded(self) -> Engine:
        if "none" not in self.sharding or "none" not in self.sharding_at_load:
            raise ValueError(
                "engine.sharding and engine.sharding_at_load must list 'none': one replica has nothing to shard"
            )
        return self

    def shardings(self, tp: int, cpu: bool) -> tuple[ShardingLevel, ...]:
        """The sharding levels that run, as themselves, for a layout with this TP on this device."""
        return self.sharding_at_load if tp > 1 or cpu else self.sharding


class Knowledge(Frozen):
    """The tables the planner reasons with."""

    floors: dict[RungKind, Floors]
    ladder: tuple[RungRule, ...] = Field(min_length=1)
    lints: Lints = Field(default_factory=Lints)
    estimator: Estimator = Field(default_factory=Estimator)
    lora_targets: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Module names LoRA can adapt, per model family (besides 'all-linear')."
    )
    dpo_needs_sft_base: bool = Field(True, description="DPO and GRPO refine a model that already knows the task.")
    engine: Engine = Field(default_factory=Engine, description="What the runtime can execute; only that is planned.")
