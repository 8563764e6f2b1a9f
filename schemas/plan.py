"""The Plan: the contract between the planner and the runtime, written as plan.json."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Frozen
from schemas.data import DataStats
from schemas.spec import Spec

Severity = Literal["error", "warning", "info"]


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
    trainable_params: int | None = None
    tokens: int | None = None
    steps: int | None = None
    flops: float | None = None
    gpu_hours: float | None = None
    gpu_hours_range: tuple[float, float] | None = None
    wall_hours: float | None = None
    wall_hours_range: tuple[float, float] | None = None
    cost_usd: float | None = None
    alternatives: tuple[Alternative, ...] = Field((), description="Up to three layouts that lost, and why.")
    assumptions: tuple[str, ...] = ()


class Stage(Frozen):
    """One node of the stage DAG."""

    name: str
    after: tuple[str, ...] = ()
    argv: tuple[str, ...] = Field(description="Command run for this stage, relative to the bundle.")
    distributed: bool = Field(False, description="Runs under torchrun across the layout's devices.")
    resources: dict[str, int | float | str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict, description="Artifacts it writes, relative paths.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Artifacts it reads, relative paths.")


class Artifacts(Frozen):
    """Where outputs go, relative to the bundle; the output model's name."""

    output_model: str = Field(description="namespace/base-model-dataset-method@plan-id")
    run_dir: str = Field("run", description="Each stage writes under run/<stage>/: status.json and its outputs.")
    adapter_dir: str | None = Field(None, description="The trained LoRA adapter (PEFT format).")
    model_dir: str | None = Field(None, description="The trained full model (safetensors).")
    sft_base_dir: str | None = Field(None, description="The SFT model a DPO stage (or a GRPO cold start) starts from, when trained here.")
    status: str = Field("run/train/status.json", description="The training stage's status.")
    metrics: str = Field("run/train/metrics.jsonl", description="Training metrics, one JSON object per line.")
    gate: str = Field("run/gate/gate.json", description="The gate's verdict.")
    published_dir: str | None = Field(None, description="Where publish puts the output model.")


class Plan(Frozen):
    """What plan.json carries. The runtime reads this and nothing else."""

    schema_version: int = 1
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

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]
