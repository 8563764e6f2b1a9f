"""What the planner knows about a training method beyond its schema: the data it trains on, a stage it needs
first, and its terms in the memory, time and FLOP estimates. Each `planner/methods/<kind>.py` builds one
`MethodRules`; `planner.methods.METHODS` joins them, keyed like `schemas.method.TRAIN_KINDS`. The schema class
holds the method's fields and defaults; `runtime/recipes/<kind>.py` trains it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from schemas.method import TrainMethod
from schemas.spec import Spec


def _never(method: TrainMethod, spec: Spec) -> bool:
    return False


def _no(method: TrainMethod) -> bool:
    return False


def _zero(method: TrainMethod) -> int:
    return 0


def _one(method: TrainMethod) -> int:
    return 1


def _nothing(method: TrainMethod) -> dict[str, Any]:
    return {}


# Shows one of a stage's method values with its source mark: marker("beta") or marker("reference", "copy").
Marker = Callable[..., str]


def _no_rows(method: TrainMethod, marker: Marker) -> list[tuple[str, str]]:
    return []


def replay_rows(method: TrainMethod, v: Marker) -> list[tuple[str, str]]:
    """The supervised methods' replay row (LoRA, full SFT, the SFT stage before DPO, KTO or GRPO)."""
    if method.replay is None:
        return [("replay", v("replay", "none"))]
    return [("replay", f"{v('replay.data')} x {v('replay.ratio')} per task record")]


@dataclass(frozen=True)
class MethodRules:
    """One training method kind, as the planner plans it. Hooks take the stage's resolved method (of this kind)."""

    kind: str
    label: str  # how the ladder and the reports name it
    formats: tuple[str, ...]  # the data formats it trains on (schemas.records.FIELDS keys)
    # An SFT stage runs first (the base of DPO, a GRPO cold start), and what the estimate says about it.
    base_stage: Callable[[TrainMethod, Spec], bool] = _never
    base_stage_note: str = ""
    # Sequences the policy runs per example (DPO: chosen and rejected): micro batch width and trained tokens.
    sequences_per_example: int = 1
    # The trainer turns dropout off (TRL's disable_dropout: DPO, KTO), LoRA's too: no dropout copies in memory.
    disables_dropout: bool = False
    # Online methods sample completions: tokens generated per prompt (longer sequences, a KV cache, decode time)
    # and completions per prompt.
    completion_tokens: Callable[[TrainMethod], int] = _zero
    generations_per_prompt: Callable[[TrainMethod], int] = _one
    # A frozen reference: a copy of the weights in memory, and a forward pass per trained token.
    reference_copy: Callable[[TrainMethod], bool] = _no
    reference_forward: Callable[[TrainMethod], bool] = _no
    # Values the trainer reads that the planner resolves (dotted key -> value), beyond the common ones.
    derived: Callable[[TrainMethod], dict[str, Any]] = field(default=_nothing)
    # The report's rows for what only this method has (planner/report_recipe.py shows the common ones).
    recipe_rows: Callable[[TrainMethod, Marker], list[tuple[str, str]]] = _no_rows


# The preference methods (DPO, KTO: schemas.method._Preference) share their base stage and their reference.


def preference_base_stage(method: TrainMethod, spec: Spec) -> bool:
    """Without method.sft_base, an SFT stage builds the base first (knowledge.dpo_needs_sft_base)."""
    return getattr(method, "sft_base", None) is None and spec.knowledge.dpo_needs_sft_base


def reference_copy(method: TrainMethod) -> bool:
    return getattr(method, "effective_reference", "") == "copy"


def reference_forward(method: TrainMethod) -> bool:
    return getattr(method, "effective_reference", "precomputed") != "precomputed"


def reference_derived(method: TrainMethod) -> dict[str, Any]:
    return {"reference": getattr(method, "effective_reference", None)}
