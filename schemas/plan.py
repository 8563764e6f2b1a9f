"""The Plan: the contract between the planner and the runtime, written as plan.json."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from schemas.base import Frozen
from schemas.data import DataFile, DataFormat, DataStats, HubSource, Mixture
from schemas.layout import AttentionImplementation
from schemas.method import TrainMethod
from schemas.spec import Spec
from schemas.tracking import TrackingPlan

Severity = Literal["error", "warning", "info"]
SCHEMA_VERSION = 2
ResolvedMethod = Annotated[TrainMethod, Field(discriminator="kind")]
Source = Literal["override", "recommended", "default", "derived"]


class Finding(Frozen):
    """One problem or consequence: what, where (config key path), and what to do."""

    severity: Severity
    code: str = Field(description="Stable check code, e.g. 'layout-tp-exceeds-node'.")
    path: str = Field(description="Config key path the finding is about, e.g. 'method.lora.adapter_dim'.")
    message: str
    fix: str = ""


class Rung(Frozen):
    """The ladder's verdict on one rung."""

    method: str
    verdict: Literal["chosen", "recommended", "rejected", "not_applicable"]
    reason: str


class ServingPlan(Frozen):
    """How the result is served: decided once by the planner, read by reports, diff and publish."""

    kind: Literal["none", "hot_swap", "new_deployment"] = Field(
        description="none: nothing trained; hot_swap: a LoRA adapter loads into the running multi-LoRA server; "
        "new_deployment: all weights changed, the model needs its own deployment."
    )
    reason: str = ""


class Decision(Frozen):
    """Which rung, why, and what the others were rejected for."""

    method: str
    requested: str = Field(description="What the config asked for: 'auto' or a method kind.")
    rungs: tuple[Rung, ...]
    pipeline: tuple[str, ...] = Field(description="Training methods run in order, e.g. ('sft', 'dpo').")
    config_urn: str | None = Field(None, description="The customization config used.")
    launcher: str = Field("local", description="The launch target: local, torchrun or slurm (auto resolved).")
    training_option: dict[str, int | str] | None = Field(None, description="The pinned option, if any.")
    next_step: str = ""
    serving: ServingPlan = Field(default_factory=lambda: ServingPlan(kind="none"))


class Layout(Frozen):
    """How the job is spread over devices."""

    nodes: int = 1
    gpus_per_node: int = 1
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    micro_batch: int = 1
    grad_accum: int = 1
    global_batch: int = 1
    sharding: Literal["none", "zero1", "zero2", "fsdp"] = "none"
    activation_checkpointing: bool = False
    precision: str = "bf16-mixed"
    seq_length: int = 0
    attention_implementation: AttentionImplementation = Field(
        "sdpa", description="The attention kernel the runtime loads the model with (layout.attention_implementation)."
    )
    source: Literal["pinned", "search", "none"] = "none"

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


class MemoryBreakdown(Frozen):
    """Bytes per GPU, by what holds them."""

    weights: int = 0
    grads: int = 0
    optimizer: int = 0
    activations: int = 0
    logits: int = 0
    adapters: int = 0
    reference_model: int = 0
    kv_cache: int = 0
    overhead: int = 0
    backward_overlap: int = Field(
        0,
        description="Subtracted: the backward writes each layer's gradients as it frees that layer's activations, so "
        "the peak holds the larger of the two, not their sum.",
    )
    gradient_buffers: int = Field(
        0,
        description="Added: what the end of the backward holds beyond the gradients and activations: the embedding's "
        "new gradient (tied: its lm_head and input parts and their sum), added to the kept ones under accumulation.",
    )
    load: int = Field(
        0,
        description="The set-up peak above the overhead (CPU): loading maps the checkpoint file beside the weights. "
        "The total is the larger of this and the training terms.",
    )
    total: int = 0
    capacity: int = 0


class Alternative(Frozen):
    """A layout the search considered, and why it lost to the chosen one."""

    layout: str
    gpus: int
    memory_per_gpu_bytes: int
    gpu_hours: float
    why: str


class Estimate(Frozen):
    """Memory, compute and time; ranges where the prior is uncertain."""

    memory_per_gpu_bytes: MemoryBreakdown | None = None
    widest_batch_tokens: int | None = Field(
        None,
        description="Tokens of the widest micro batch the memory is priced at: each batch pads to its longest record "
        "(its tokens, counted with the model's tokenizer or estimated as chars / knowledge.estimator.chars_per_token, "
        "+ the prompt format + BOS/EOS), or the sequence length.",
    )
    trainable_params: int | None = None
    tokens: int | None = None
    tokens_per_second: float | None = Field(
        None, description="Planned training throughput of the layout (all its GPUs) at the MFU used, fixed costs aside."
    )
    steps: int | None = None
    flops: float | None = None
    gpu_hours: float | None = None
    gpu_hours_range: tuple[float, float] | None = None
    wall_hours: float | None = None
    wall_hours_range: tuple[float, float] | None = None
    cost_usd: float | None = None
    alternatives: tuple[Alternative, ...] = Field((), description="Up to three layouts that lost, and why.")
    assumptions: tuple[str, ...] = ()


class PromptFormat(Frozen):
    """How a record becomes the model's text: the same for training and for evaluation."""

    kind: Literal["chat_template", "plain"] = Field(
        description="chat_template: the tokenizer's chat template (instruct models); plain: `template`."
    )
    template: str = Field(
        description="plain: the customization config's prompt template with {prompt} and {completion}; "
        "chat_template: 'tokenizer' (the template shipped with the model's tokenizer)."
    )


class StageData(Frozen):
    """The records a stage reads: resolved files (or a Hub dataset, or a mixture), their fingerprint, the hold-out
    rule."""

    format: DataFormat
    root: str | None = Field(
        None, description="Absolute dataset folder (training/, validation/); null for a Hub dataset or a mixture."
    )
    files: tuple[DataFile, ...] = Field((), description="Every data file with its absolute path, size and sha256.")
    hub: HubSource | None = None
    mixture: Mixture | None = None
    holdout_fraction: float = Field(description="Share of training held out when validation/ is absent.")
    holdout_seed: int = Field(description="Seed of the hold-out draw (the training method's seed).")
    use: Literal["as_is", "chosen", "desirable", "answer"] = Field(
        "as_is",
        description="What an SFT stage trains on: the records as they are, the chosen answer of "
        "preference pairs (the SFT base of DPO or KTO), the desirable answers of unpaired feedback (the SFT base of "
        "KTO), or 'Answer: <answer>' of prompt/answer records (a GRPO cold start).",
    )


class Evaluation(Frozen):
    """What an evaluation stage runs: prompting strategy, task metric, general benchmark."""

    strategy: Literal["template", "zero_shot", "few_shot", "rag"]
    few_shot: int = 0
    system_prompt: str | None = None
    top_k: int = 0
    chunk_tokens: int = 0
    retriever: str | None = None
    metric: str
    max_examples: int | None = None
    max_new_tokens: int
    general_benchmark: str = Field(
        description="builtin:<name> as configured, the absolute path of a local lm_eval task YAML, or an lm_eval task "
        "name."
    )
    general_benchmark_path: str | None = Field(None, description="Absolute path of a builtin benchmark's items.")
    sft_base: str | None = Field(None, description="An external SFT base the evaluated model starts from.")


class Stop(Frozen):
    """How a training stage stops before its time limit without losing work: resolved once by the planner
    (planner/shutdown.py); the launch scripts read it. Slurm signals the stage (SIGUSR1, `#SBATCH --signal`)
    lead_seconds before the limit; the runtime saves a checkpoint, the job requeues and resumes from it. torchrun
    waits as long (--shutdown-timeout) for its workers to save before it kills them."""

    checkpoint_bytes: int = Field(
        ge=0,
        description="What one resumable checkpoint writes (trainable weights and "
        "their optimizer state: all weights for full SFT, the adapters for LoRA).",
    )
    checkpoint_seconds: float = Field(
        ge=0, description="checkpoint_bytes at knowledge.estimator.checkpoint_gb_per_minute."
    )
    step_seconds: float = Field(
        ge=0, description="One optimizer step at the estimate's slow end (the stop waits for the step in flight)."
    )
    lead_seconds: int = Field(
        ge=1,
        le=65535,
        description="step_seconds + checkpoint_seconds + knowledge.estimator.stop_margin_seconds, rounded up: how long "
        "before the time limit the stage is signalled, and how long torchrun waits for its workers to stop.",
    )


class Stage(Frozen):
    """One node of the stage DAG. Training stages carry everything their trainer needs."""

    name: str
    after: tuple[str, ...] = ()
    argv: tuple[str, ...] = Field(description="Command run for this stage, relative to the bundle.")
    distributed: bool = Field(False, description="Runs under torchrun across the layout's devices.")
    resources: dict[str, int | float | str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict, description="Artifacts it writes, relative paths.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Artifacts it reads, relative paths.")
    method: ResolvedMethod | None = Field(None, description="Training stages: every hyperparameter the trainer uses.")
    method_sources: dict[str, Source] = Field(
        default_factory=dict,
        description="Where each method value came from, by dotted key: a user override, "
        "the model config's recommendation, the schema default, or derived by the planner (layout, data).",
    )
    layout: Layout | None = Field(None, description="Training stages: this stage's own parallel layout.")
    estimate: Estimate | None = Field(None, description="Training stages: this stage's memory, time and cost.")
    prompt: PromptFormat | None = None
    data: StageData | None = None
    evaluation: Evaluation | None = None
    stop: Stop | None = Field(None, description="Training stages: how the stage stops before its time limit.")


class Artifacts(Frozen):
    """Where outputs go, relative to the bundle; the output model's name."""

    output_model: str = Field(description="namespace/base-model-dataset-method@plan-id")
    adapter_dir: str | None = Field(None, description="The trained LoRA adapter (PEFT format).")
    model_dir: str | None = Field(None, description="The trained full model (safetensors).")
    sft_base_dir: str | None = Field(
        None, description="The SFT model a DPO stage (or a GRPO cold start) starts from, when trained here."
    )
    status: str = Field("run/train/status.json", description="The training stage's status.")
    metrics: str = Field("run/train/metrics.jsonl", description="Training metrics, one JSON object per line.")
    gate: str = Field("run/gate/gate.json", description="The gate's verdict.")
    published_dir: str | None = Field(None, description="Where publish puts the output model.")


class Plan(Frozen):
    """What plan.json carries. The runtime reads this and nothing else."""

    schema_version: int = SCHEMA_VERSION
    id: str
    name: str = Field(description="Bundle folder name: <goal>-<id>.")
    spec: Spec
    data_stats: DataStats
    decision: Decision
    layout: Layout
    estimate: Estimate
    findings: tuple[Finding, ...]
    feasible: bool
    stages: tuple[Stage, ...]
    artifacts: Artifacts
    tracking: TrackingPlan | None = Field(
        None,
        description="Where every stage logs its metrics and the plan's hyperparameters, resolved from spec.tracking "
        "(null: tracking=none). Not part of the plan id.",
    )

    @field_validator("schema_version")
    @classmethod
    def _current(cls, version: int) -> int:
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"plan.json schema version {version}; this version reads {SCHEMA_VERSION}: re-plan "
                "(python -m planner <the same overrides>) to write a current plan"
            )
        return version

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"plan {self.id} has no stage {name!r} (stages: {', '.join(s.name for s in self.stages)})")

    @property
    def training_stages(self) -> tuple[Stage, ...]:
        return tuple(s for s in self.stages if s.method is not None)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]
