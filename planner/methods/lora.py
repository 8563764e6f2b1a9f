"""LoRA: supervised fine-tuning of adapters on a frozen base (the adapter terms are the estimator's, by
finetuning_type)."""

from __future__ import annotations

from planner.methods.base import MethodRules, replay_rows

RULES = MethodRules(kind="lora", label="LoRA", formats=("prompt_completion", "messages"), recipe_rows=replay_rows)
