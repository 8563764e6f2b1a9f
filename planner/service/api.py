"""The request and response bodies: NeMo Customizer's v1 shapes (what the `nemo-microservices` client parses), and
our additions, each marked `ladder extension` in its description so the OpenAPI schema says which fields are ours.

Requests check types only: ranges and combinations are the planner's (the schemas' bounds, the checks), so one set
of rules answers the CLI and the API, and a wrong value comes back as a finding with the API's key path and a fix.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from schemas.goal import OUTPUT_MODEL_PATTERN
from schemas.plan import Estimate, Plan

JobStatus = Literal[
    "created", "pending", "running", "cancelling", "cancelled", "failed", "completed", "ready", "unknown"
]
TERMINAL = ("completed", "failed", "cancelled")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
EXT = "ladder extension: "


class ApiError(Exception):
    """An HTTP error with FastAPI's body, {"detail": ...}: a text, or a list of findings."""

    def __init__(self, status_code: int, detail: str | list[dict[str, Any]]):
        super().__init__(detail if isinstance(detail, str) else f"{len(detail)} problems")
        self.status_code = status_code
        self.detail = detail


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------- the job body


class DatasetRef(_Body):
    """A dataset of the Data Store layout: <datasets root>/<namespace>/<name>/training/ and validation/."""

    name: str = Field(pattern=NAME_PATTERN)
    namespace: str = Field("default", pattern=NAME_PATTERN)
    files_url: str | None = Field(None, description="Not supported here: the dataset is read from the datasets root.")


class LoraParams(_Body):
    adapter_dim: int | None = Field(None, description="LoRA rank; a power of two.")
    alpha: int | None = Field(
        None,
        validation_alias=AliasChoices("alpha", "adapter_alpha"),
        description="LoRA alpha (`adapter_alpha` is accepted too); null: the config's recommended recipe, "
        "else alpha = adapter_dim.",
    )
    adapter_dropout: float | None = None
    target_modules: list[str] | None = None


class DpoParams(_Body):
    ref_policy_kl_penalty: float | None = Field(None, description="The KL penalty against the reference (beta).")
    preference_loss_weight: float | None = None
    sft_loss_weight: float | None = None
    preference_average_log_probs: bool | None = Field(None, description="Not supported: leave it unset.")
    sft_average_log_probs: bool | None = Field(None, description="Not supported: leave it unset.")
    max_grad_norm: float | None = Field(None, description="Not supported: leave it unset.")


class KtoParams(_Body):
    """ladder extension: KTO on unpaired feedback (training_type kto)."""

    ref_policy_kl_penalty: float | None = None
    desirable_weight: float | None = None
    undesirable_weight: float | None = None


class GrpoParams(BaseModel):
    """GRPO. The rewards come from the config's recipe (verifiable rewards); `environment` is kept as given."""

    model_config = ConfigDict(extra="allow")

    environment: dict[str, Any] | None = None
    num_generations_per_prompt: int | None = None
    ref_policy_kl_penalty: float | None = None
    generation_temperature: float | None = None


class SftParams(_Body):
    hidden_dropout: float | None = Field(None, description="Not supported: leave it unset.")
    attention_dropout: float | None = Field(None, description="Not supported: leave it unset.")
    ffn_dropout: float | None = Field(None, description="Not supported: leave it unset.")


class Hyperparameters(_Body):
    """Customizer's hyperparameters. Unset values come from the customization config's recommended recipe, as with
    the CLI's `method.<key>=` overrides."""

    training_type: Literal["sft", "dpo", "grpo", "kto", "distillation"] = Field(
        "sft", description="sft, dpo, grpo (and kto, a ladder extension); distillation is not supported."
    )
    finetuning_type: Literal["lora", "all_weights", "lora_merged"] = "lora"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    min_learning_rate: float | None = None
    warmup_steps: int | None = None
    weight_decay: float | None = None
    seed: int | None = None
    max_steps: int | None = None
    val_check_interval: float | None = None
    sequence_packing_enabled: bool | None = None
    log_every_n_steps: int | None = Field(None, description="Accepted and not applied: the runtime logs each step.")
    optimizer: (
        Literal["adam_with_cosine_annealing", "adam_with_flat_lr", "adamw_with_cosine_annealing", "adamw_with_flat_lr"]
        | None
    ) = None
    lora: LoraParams | None = None
    dpo: DpoParams | None = None
    kto: KtoParams | None = Field(None, description=EXT + "KTO's parameters.")
    grpo: GrpoParams | None = None
    sft: SftParams | None = None
    distillation: dict[str, Any] | None = Field(None, description="Not supported.")


class JobCreate(_Body):
    """POST /v1/customization/jobs (and POST /v1/plans)."""

    config: str | dict[str, Any] = Field(
        description="The customization config URN, namespace/name@version (+gpu class), e.g. "
        "local/tiny-llama@v1.0.0+CPU; the name alone (tiny-llama@v1.0.0+CPU) is looked up in the catalog."
    )
    dataset: DatasetRef | str = Field(description='{"name", "namespace"} or "namespace/name".')
    hyperparameters: Hyperparameters
    output_model: str | None = Field(
        None,
        pattern=OUTPUT_MODEL_PATTERN,
        description="Name of the output model, namespace/name[@version] (what publish writes); default "
        "<namespace>/<model>-<dataset>-<finetuning>@<job id>.",
    )
    name: str | None = None
    namespace: str | None = Field(None, pattern=NAME_PATTERN)
    description: str | None = None
    project: str | None = None
    custom_fields: dict[str, Any] | None = None
    ownership: dict[str, Any] | None = None
    dataset_parameters: dict[str, Any] | None = None
    integrations: list[dict[str, Any]] | None = Field(None, description="Not supported (W&B): leave it unset.")
    goal: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description=EXT + "a goal of the catalog (conf/goal/<name>.yaml, e.g. tone) whose metric, target, budget and "
        "serving needs the plan and the gate use; default: a goal derived from the data (no target score).",
    )


# ----------------------------------------------------------------------------- responses


class StatusLog(BaseModel):
    updated_at: dt.datetime
    message: str | None = None
    detail: str | None = None


class MetricValue(BaseModel):
    step: int | None = None
    value: float | None = None
    timestamp: str | None = None
    epoch: int | None = Field(None, description=EXT + "the epoch the value closes.")


class MetricValues(BaseModel):
    train_loss: list[MetricValue] = Field(default_factory=list, description="Mean training loss of each epoch.")
    val_loss: list[MetricValue] = Field(default_factory=list, description="Validation loss at the end of each epoch.")


class Metrics(BaseModel):
    keys: list[Literal["train_loss", "val_loss", "train_accuracy", "val_accuracy"]] = Field(default_factory=list)
    metrics: MetricValues = Field(default_factory=MetricValues)


class StageState(BaseModel):
    """ladder extension: one stage of the bundle, from its status.json."""

    name: str
    state: str
    error: str | None = None


class GateVerdict(BaseModel):
    """ladder extension: the gate's verdict and whether the output model was published."""

    verdict: Literal["pending", "pass", "fail", "error", "not_run"]
    reasons: list[str] = Field(default_factory=list)
    published: bool = False
    published_model: str | None = Field(None, description="The output model's name once published; null otherwise.")
    published_dir: str | None = None
    report: str | None = Field(None, description="The gate's HTML report, a path on the server.")
    gate: dict[str, Any] | None = Field(None, description="gate.json as the gate stage wrote it.")


class StatusDetails(BaseModel):
    created_at: dt.datetime
    updated_at: dt.datetime
    status: JobStatus
    percentage_done: float | None = None
    epochs_completed: int | None = None
    steps_completed: int | None = None
    steps_per_epoch: int | None = None
    best_epoch: int | None = None
    elapsed_time: float | None = None
    train_loss: float | None = Field(None, description="At the best epoch (lowest val_loss).")
    val_loss: float | None = Field(None, description="At the best epoch (lowest val_loss).")
    status_logs: list[StatusLog] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    stages: list[StageState] = Field(default_factory=list, description=EXT + "each stage of the bundle.")
    gate: GateVerdict | None = Field(None, description=EXT + "the gate's verdict.")


class TrainingOption(BaseModel):
    training_type: str
    finetuning_type: str
    num_gpus: int
    num_nodes: int | None = None
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    micro_batch_size: int


class ConfigSnapshot(BaseModel):
    base_model: str
    max_seq_length: int
    precision: str
    training_option: TrainingOption
    prompt_template: str | None = None


class JobWarning(BaseModel):
    message: str | None = None
    explanation: str | None = None


class Job(BaseModel):
    id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    namespace: str
    name: str | None = None
    description: str | None = None
    project: str | None = None
    custom_fields: dict[str, Any] | None = None
    config: str
    dataset: DatasetRef
    hyperparameters: dict[str, Any]
    output_model: str
    status: JobStatus
    status_details: StatusDetails
    config_snapshot: ConfigSnapshot | None = None
    warnings: list[JobWarning] = Field(default_factory=list, description="The plan's warnings.")
    plan_id: str = Field(description=EXT + "the id of the plan the job runs (a hash of the config and the data).")
    estimate: Estimate = Field(description=EXT + "the plan's memory, time and cost estimate.")
    gpus: int = Field(description=EXT + "GPUs the job holds while it runs (the inventory's CPU slot counts as one).")
    bundle: str = Field(description=EXT + "the compiled bundle on the server (plan.json, report.md, launch/, run/).")
    planner_command: str = Field(description=EXT + "the CLI command that compiles the same plan.")
    gate: GateVerdict = Field(description=EXT + "the gate's verdict.")


class Pagination(BaseModel):
    page: int
    page_size: int
    current_page_size: int
    total_pages: int
    total_results: int


class JobPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Job]
    pagination: Pagination
    sort: str = "-created_at"
    filter: dict[str, str] = Field(default_factory=dict)


class ConfigItem(BaseModel):
    name: str = Field(description="name@version+gpu class, e.g. tiny-llama@v1.0.0+CPU; the URN is namespace/name.")
    namespace: str
    description: str | None = None
    target: str = Field(description="The base model, namespace/name.")
    training_precision: str | None = None
    max_seq_length: int
    prompt_template: str | None = None
    training_options: list[TrainingOption]
    urn: str = Field(description=EXT + "the full config URN to POST as `config`.")
    model: str = Field(description=EXT + "the catalog option (conf/model/<model>.yaml).")
    more_training_options: list[TrainingOption] = Field(
        default_factory=list, description=EXT + "options of training types Customizer has no name for (kto)."
    )


class ConfigPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[ConfigItem]
    pagination: Pagination


class ApiFinding(BaseModel):
    """One reason a job is refused (or a warning about it), in the API's key paths."""

    loc: list[str] = Field(description="The key path as a list, FastAPI style: ['body', 'hyperparameters', ...].")
    path: str = Field(description="The key path in the request, e.g. hyperparameters.learning_rate.")
    msg: str
    fix: str = ""
    type: str = Field(description="The planner's check code (docs/config-reference.md names the keys).")
    severity: Literal["error", "warning", "info"] = "error"


class PlanResponse(BaseModel):
    """ladder extension: POST /v1/plans, a dry run of a job body."""

    feasible: bool
    findings: list[ApiFinding]
    output_model: str
    planner_command: str
    plan: Plan


class Problem(BaseModel):
    detail: str | list[ApiFinding]


__all__ = [
    "TERMINAL",
    "ApiError",
    "ApiFinding",
    "ConfigItem",
    "ConfigPage",
    "Job",
    "JobCreate",
    "JobPage",
    "PlanResponse",
    "StatusDetails",
]
