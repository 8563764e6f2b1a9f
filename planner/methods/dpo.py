"""DPO: preference pairs through the policy and a frozen reference, on an SFT base."""

from __future__ import annotations

from planner.methods.base import Marker, MethodRules
from schemas.method import Dpo, TrainMethod
from schemas.spec import Spec


def _dpo(method: TrainMethod) -> Dpo:
    assert isinstance(method, Dpo), method.kind
    return method


def _base_stage(method: TrainMethod, spec: Spec) -> bool:
    """Without method.sft_base, an SFT stage on the chosen answers builds the base (knowledge.dpo_needs_sft_base)."""
    return _dpo(method).sft_base is None and spec.knowledge.dpo_needs_sft_base


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
    base_stage=_base_stage,
    base_stage_note="includes the SFT stage that builds the DPO base, on the same data's chosen answers",
    sequences_per_example=2,  # chosen and rejected
    reference_copy=lambda m: _dpo(m).effective_reference == "copy",
    reference_forward=lambda m: _dpo(m).effective_reference != "precomputed",
    derived=lambda m: {"reference": _dpo(m).effective_reference},
    recipe_rows=_rows,
)
