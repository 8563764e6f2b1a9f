"""KTO: unpaired feedback (each answer alone, labelled desirable or not) through the policy and a frozen
reference, on an SFT base. Preference pairs train too: each pair is one desirable and one undesirable answer."""

from __future__ import annotations

from planner.methods.base import (
    Marker,
    MethodRules,
    preference_base_stage,
    reference_copy,
    reference_derived,
    reference_forward,
)
from schemas.method import Kto, TrainMethod


def _kto(method: TrainMethod) -> Kto:
    assert isinstance(method, Kto), method.kind
    return method


def _rows(method: TrainMethod, v: Marker) -> list[tuple[str, str]]:
    m = _kto(method)
    rows = [
        (
            "KTO",
            f"beta {v('beta')}, reference {v('reference', m.effective_reference)}, desirable weight "
            f"{v('desirable_weight')}, undesirable weight {v('undesirable_weight')}",
        )
    ]
    return rows + ([("SFT base", v("sft_base"))] if m.sft_base else [])


RULES = MethodRules(
    kind="kto",
    label="KTO",
    formats=("unpaired_preference", "preference"),
    base_stage=preference_base_stage,
    base_stage_note="includes the SFT stage that builds the KTO base, on the same data's desirable answers",
    # each answer runs once with gradients; TRL's KL estimate runs the policy on mismatched pairs without them
    sequences_per_example=2,
    disables_dropout=True,  # runtime/recipes: disable_dropout=True, so the two log-probabilities compare
    reference_copy=reference_copy,
    reference_forward=reference_forward,
    derived=reference_derived,
    recipe_rows=_rows,
)
