"""The resolved user configuration: one Spec per plan, validated once at the seam."""

from __future__ import annotations

from pydantic import Field

from schemas.base import MAX_TOKENS, Frozen
from schemas.data import Data
from schemas.goal import Goal
from schemas.inventory import Inventory
from schemas.knowledge import Knowledge
from schemas.launcher import Launcher
from schemas.layout import LayoutRequest
from schemas.method import Method
from schemas.model import Model


class Eval(Frozen):
    """How the gate judges a run."""

    general_benchmark: str = Field(
        "builtin:general", description="Forgetting check: builtin:<name> or an lm_eval task."
    )
    forgetting_threshold: float = Field(
        2.0, ge=0, le=100, description="Largest allowed drop in general score, in points."
    )
    max_examples: int | None = Field(None, ge=1, le=100_000_000, description="Cap on evaluated examples per split.")
    max_new_tokens: int = Field(96, ge=1, le=MAX_TOKENS)
    diagnostics_window: int = Field(
        3, ge=2, le=1000, description="Evaluations of rising val loss that flag overfitting."
    )


class Spec(Frozen):
    """Everything a plan is a function of (with the data statistics)."""

    goal: Goal
    model: Model
    data: Data
    inventory: Inventory
    method: Method
    launcher: Launcher = Field(default_factory=Launcher)
    layout: LayoutRequest = Field(default_factory=LayoutRequest)
    eval: Eval = Field(default_factory=Eval)
    knowledge: Knowledge
