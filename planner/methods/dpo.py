"""DPO: preference pairs through the policy and a frozen reference, on an SFT base."""

from __future__ import annotations

from planner.methods.base import (
    Marker,
    MethodRules,
    preference_base_stage,
    reference_copy,
    reference_derived,
    reference_forward,
)
from schemas.method import Dpo, TrainMethod


def _dpo(method: TrainMethod) -> Dpo:
    assert isinstance(method, Dpo), method.kind
    return method


def _rows(method: TrainMethod, v: Marker) -> list[tuple[str, str]]:
    m = _dpo(method)
    rows = [
        (
            "DPO",
            f"beta {v('beta')}, reference {v('reference', m.effective_reference)}, SFT loss weight "
            f"{v('sft_loss_weight')}, preference loss weight {v('preference_loss_weight')}",
        )
    ]
    return rows + ([("SFT base", v("sft_base"))] if m.sft_base else [])


RULES = MethodRules(
    kind="dpo",
    label="DPO",
    formats=("preference",),
    base_stage=preference_base_stage,
    base_stage_note="includes the SFT stage that builds the DPO base, on the same data's chosen answers",
    sequences_per_example=2,  # chosen and rejected
    disables_dropout=True,  # runtime/recipes: disable_dropout=True, so the two log-probabilities compare
    reference_copy=reference_copy,
    reference_forward=reference_forward,
    derived=reference_derived,
    recipe_rows=_rows,
)
