"""The training recipes, one per method kind of plan.json: RECIPES maps a stage's resolved method kind to the
module that trains it (runtime.train looks it up). Each recipe module reads top to bottom: its data in the
stage's prompt format, its TRL config (trl_config), its trainer, fit. The shared pieces live in
runtime.trainer (TrainingArguments, adapter, NaN guard, fit), runtime.lifecycle (status, metrics, early
stopping, SIGTERM), runtime.parallel (the layout and the model load) and runtime.checkpoints (weights in and
out, resume). A new method is one module here and one line below; tests/runtime/test_recipes.py keeps the keys
equal to schemas.method.TRAIN_KINDS.

Importing this package loads no torch: the recipes import it inside their functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from runtime.context import RunContext
from runtime.parallel import Parallel
from runtime.recipes import dpo, grpo, kto, sft


class Recipe(Protocol):
    """What a recipe module provides (`method`: the schema class of its kind, e.g. schemas.method.Dpo)."""

    def run(self, ctx: RunContext, method: Any) -> None:
        """Train the running stage and save its weights (StageFailed / Cancelled on the way out)."""

    def trl_config(
        self, ctx: RunContext, method: Any, checkpoints: Path, n_train: int, has_val: bool, tty: bool, par: Parallel
    ) -> tuple[Any, int]:
        """The TRL config the stage trains with (every value from plan.json) and the optimizer steps per epoch."""


RECIPES: dict[str, Recipe] = {
    "lora": sft,
    "sft": sft,
    "dpo": dpo,
    "kto": kto,
    "grpo": grpo,
}
