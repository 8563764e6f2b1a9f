"""The training methods the planner plans, one module each (`planner/methods/<kind>.py`), keyed like
`schemas.method.TRAIN_KINDS` and `runtime.recipes.RECIPES` (tests/unit/test_methods.py keeps them equal).

A new method: its schema class, a module here, its recipe in runtime/recipes, its floors and ladder rung in
conf/knowledge, a data format if it needs one.
"""

from __future__ import annotations

from planner.methods import dpo, grpo, kto, lora, sft
from planner.methods.base import MethodRules
from schemas.method import TrainMethod

METHODS: dict[str, MethodRules] = {m.RULES.kind: m.RULES for m in (lora, sft, dpo, kto, grpo)}


def rules(method: TrainMethod) -> MethodRules:
    """The rules of a resolved training method."""
    return METHODS[method.kind]


__all__ = ["METHODS", "MethodRules", "rules"]
