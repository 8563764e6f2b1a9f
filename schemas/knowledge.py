"""Knowledge tables as data: data floors, the ladder's rules, lint thresholds, estimator priors.

The values live in conf/knowledge/; these models only say their shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.base import Frozen
from schemas.goal import GapKind

RungKind = Literal["prompting", "rag", "lora", "sft", "dpo", "grpo"]
RungCheck = Literal["gap", "baseline", "format", "soft_floor", "hot_swap", "fits", "budget"]


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
        0.6, ge=0, description="A CPU training process before the model: torch, transformers, trl and peft "
        "imported, the dataset, allocator arenas.")
    load_minutes: float = Field(3.0, ge=0, description="Model load and setup per stage launch.")
    eval_fraction: float = Field(0.1, ge=0, description="Eval cost per epoch as a fraction of training.")
    checkpoint_gb_per_minute: float = Field(60.0, gt=0, description="Checkpoint write throughput.")
    generation_tokens_per_second: float = Field(
        2000.0, gt=0, description="GRPO rollout throughput per GPU for an 8B model (scaled by size)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Estimator:
        if not self.mfu_low <= self.mfu <= self.mfu_high:
            raise ValueError("need mfu_low <= mfu <= mfu_high")
        return self


class Knowledge(Frozen):
    """The tables the planner reasons with."""

    floors: dict[RungKind, Floors]
    ladder: tuple[RungRule, ...] = Field(min_length=1)
    lints: Lints = Field(default_factory=Lints)
    estimator: Estimator = Field(default_factory=Estimator)
    dpo_needs_sft_base: bool = Field(True, description="DPO and GRPO refine a model that already knows the task.")
