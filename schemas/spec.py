"""The resolved user configuration: one Spec per plan, validated once at the seam."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

from schemas.base import MAX_TOKENS, Frozen
from schemas.calibration import Calibration
from schemas.data import Data
from schemas.goal import Goal
from schemas.inventory import Inventory
from schemas.knowledge import Knowledge
from schemas.launcher import Launcher
from schemas.layout import LayoutRequest
from schemas.method import Method
from schemas.model import Model
from schemas.publish import Publish
from schemas.tracking import Tracking

_DEFAULT_PUBLISH = Publish().model_dump(mode="json")
_DEFAULT_TRACKING = Tracking().model_dump(mode="json")


class Eval(Frozen):
    """How the gate judges a run."""

    general_benchmark: str = Field(
        "builtin:general",
        description="Forgetting check: builtin:<name> (multiple choice, shipped), the path of a local "
        "lm-evaluation-harness task YAML (its `task:` or `group:` and a local dataset: runs offline; relative paths "
        "in it are read from its folder), or an lm_eval task name (mmlu, arc_easy: data from the Hugging Face Hub "
        "or its cache). lm_eval tasks need the eval extra (pip install 'ladder-planner[eval]').",
    )
    forgetting_threshold: float = Field(
        2.0,
        ge=0,
        le=100,
        description="Largest allowed drop in general score, in points. The gate fails when the whole 95% interval "
        "of the drop (a paired bootstrap over the benchmark's items) lies above it; a drop above it whose interval "
        "reaches below passes as inconclusive.",
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
    publish: Publish = Field(default_factory=Publish, description="What publish ships: a merged copy, a Hub upload.")
    tracking: Tracking = Field(
        default_factory=Tracking,
        description="Where every stage logs its metrics and the plan's hyperparameters (tracking=none|tensorboard|"
        "mlflow|wandb). Not part of the plan id: it observes the run and changes nothing in it.",
    )
    calibration: Calibration | None = Field(
        None,
        description="Measured corrections to the estimator's priors (`calibration=<file>` written by "
        "python -m planner.calibrate); null: the estimate uses the priors.",
    )

    @model_serializer(mode="wrap")
    def _without_no_calibration(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # an uncalibrated spec serialises (and hashes into the plan id) as it did before the key existed
        data = handler(self)
        if isinstance(data, dict) and data.get("calibration", 0) is None:
            data.pop("calibration")
        # likewise the default publish block: a plan that publishes only the local folder keeps its id
        if isinstance(data, dict) and data.get("publish") == _DEFAULT_PUBLISH:
            data.pop("publish")
        # and no tracking: plan.json reads as it did before tracking existed (tracking never enters the plan id)
        if isinstance(data, dict) and data.get("tracking") == _DEFAULT_TRACKING:
            data.pop("tracking")
        return data
