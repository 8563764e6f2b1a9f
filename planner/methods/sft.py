"""Full SFT: supervised fine-tuning of all weights; also the base stage other methods run first."""

from __future__ import annotations

from planner.methods.base import MethodRules, replay_rows

RULES = MethodRules(kind="sft", label="full SFT", formats=("prompt_completion", "messages"), recipe_rows=replay_rows)
