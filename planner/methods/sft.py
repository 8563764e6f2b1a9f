"""Full SFT: supervised fine-tuning of all weights; also the base stage other methods run first."""

from __future__ import annotations

from planner.methods.base import MethodRules

RULES = MethodRules(kind="sft", label="full SFT", formats=("prompt_completion", "messages"))
