"""What the team wants: the gap to close, how it is measured, what it may cost."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from schemas.base import Frozen, SafeName

DEFAULT_MAX_LORA_RANK = 16  # vLLM's --max-lora-rank default
# namespace/name[@version], each part a name that can become part of a folder name (no separators, no traversal)
_PART = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}"
OUTPUT_MODEL_PATTERN = rf"^{_PART}/{_PART}(@{_PART})?$"

GapKind = Literal["format", "style", "task", "knowledge", "domain", "alignment", "reasoning"]
Metric = Literal[
    "exact_match",
    "accuracy",
    "macro_f1",
    "rouge_l",
    "pass_at_1",
    "preference_accuracy",
    "answer_recall",
]


class Serving(Frozen):
    """How the result must be served; drives the redeploy consequences."""

    hot_swap: bool = Field(
        False, description="The result must hot-swap into a running multi-LoRA server (no new deployment)."
    )
    server: str | None = Field(None, description="The serving stack, for the report (e.g. 'vllm multi-lora').")
    max_lora_rank: int = Field(
        DEFAULT_MAX_LORA_RANK,
        ge=1,
        le=65_536,
        description="The largest LoRA rank the running server accepts (vLLM: --max-lora-rank, default 16); with "
        "hot_swap a LoRA adapter of a higher rank (method.lora.adapter_dim) is an error: the server refuses it.",
    )

    @model_serializer(mode="wrap")
    def _without_default_rank(self, handler: SerializerFunctionWrapHandler) -> Any:
        # the default serialises (and hashes into the plan id) as before the key existed
        data = handler(self)
        if isinstance(data, dict) and data.get("max_lora_rank") == DEFAULT_MAX_LORA_RANK:
            data.pop("max_lora_rank")
        return data


class Goal(Frozen):
    """A customization goal: the gap, the task metric, the target and the budget."""

    name: SafeName = Field(description="Short name; part of the bundle folder and the output model name.")
    namespace: SafeName = Field("default", description="Namespace of the output model (namespace/name@plan-id).")
    description: str = Field(description="What is wrong today, in the team's words.")
    gap: GapKind = Field(
        description="The kind of gap: format, style (tone), task, knowledge (facts), domain (deep shift), "
        "alignment (preferences, safety) or reasoning (verifiable answers)."
    )
    metric: Metric = Field(description="The task metric the gate compares, baseline against tuned.")
    baseline_score: float | None = Field(
        None, ge=0, le=1, description="Task metric measured today with the best prompt; null when not measured yet."
    )
    target_score: float | None = Field(None, ge=0, le=1, description="Task metric that counts as done (a fraction).")
    gpu_hour_budget: float | None = Field(
        None, gt=0, le=100_000_000, description="GPU-hours the team will spend; null for no limit."
    )
    deadline_hours: float | None = Field(
        None,
        gt=0,
        le=8784,
        description="Wall-clock hours the team can wait for a training run; the planner adds data-parallel "
        "replicas (more GPUs or nodes of the inventory) until the expected wall time fits. Null: cheapest layout.",
    )
    serving: Serving = Field(default_factory=Serving)
    output_model: str | None = Field(
        None,
        description="The output model's name, namespace/name@version or namespace/name (the job service sets it "
        "to the job's); null: <namespace>/<model>-<data>-<method>@<plan id>.",
    )

    @field_validator("output_model")
    @classmethod
    def _output_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(OUTPUT_MODEL_PATTERN, value):
            raise ValueError(
                f"{value!r} is not namespace/name@version or namespace/name (each part letters, digits and . _ + -, "
                "starting with a letter or digit), e.g. team/support-tone@v1"
            )
        return value

    @model_serializer(mode="wrap")
    def _without_default_output(self, handler: SerializerFunctionWrapHandler) -> Any:
        # unset, it serialises (and hashes into the plan id) as before the key existed
        data = handler(self)
        if isinstance(data, dict) and data.get("output_model") is None:
            data.pop("output_model", None)
        return data
