"""The draft plan: what the planner derives before the checks run, built once and frozen.

`planner.core` builds it (config selection, ladder, each training stage laid out and estimated);
`planner.checks` reads it and never changes it. This module imports neither, so both can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner import layout as layout_mod
from planner import resolve
from planner.host import Host
from planner.ladder import LadderResult
from planner.methods import rules
from schemas.data import DataStats
from schemas.method import TrainMethod
from schemas.model import CustomizationConfig, TrainingOption
from schemas.plan import Estimate, Layout, PromptFormat
from schemas.spec import Spec


@dataclass(frozen=True)
class Selection:
    """The customization config a plan uses and how it was chosen. `problem` is the finding code when
    model.config names no usable config (the fallback is then used for the sequence length and template)."""

    config: CustomizationConfig | None
    source: str  # explicit | matched (by GPU class) | foreign (no config for this GPU class) | derived (none)
    problem: str | None = None  # config-urn-invalid | config-urn-version | config-urn-unknown
    detail: str = ""  # what the URN parser said, for config-urn-invalid


@dataclass(frozen=True)
class TrainStage:
    """One training stage as planned: its resolved recipe, its own layout and estimate."""

    name: str  # train | train_sft
    kind: str
    recipe: resolve.Recipe  # before the layout: what the user and the config asked for
    seq: int
    widest: int = 0  # tokens of the widest micro batch the data makes (resolve.widest_batch); 0: seq
    layout_result: layout_mod.Result | None = None
    candidate: layout_mod.Candidate | None = None
    option: TrainingOption | None = None
    layout: Layout | None = None
    estimate: Estimate | None = None
    final: resolve.Recipe | None = None  # every value the trainer reads, filled from the layout and the data

    @property
    def method(self) -> TrainMethod:
        return (self.final or self.recipe).method


@dataclass(frozen=True)
class Draft:
    """Everything derived before the checks run; the checks read it, never change it."""

    spec: Spec
    stats: DataStats
    selection: Selection
    method_kind: str
    train: TrainMethod | None  # the last training stage's recipe (as asked, before the layout fills it in)
    pipeline: tuple[str, ...]
    ladder: LadderResult
    prompt: PromptFormat | None = None
    stages: tuple[TrainStage, ...] = ()
    gpu_hours: float | None = None  # the whole pipeline (an SFT base stage included)
    wall_hours: float | None = None
    # the planning machine, probed at the edge (warnings only); unknown by default
    host: Host = field(default_factory=Host)

    @property
    def config(self) -> CustomizationConfig | None:
        return self.selection.config

    @property
    def config_source(self) -> str:
        return self.selection.source

    @property
    def main(self) -> TrainStage | None:
        return self.stages[-1] if self.stages else None

    @property
    def layout_result(self) -> layout_mod.Result | None:
        return self.main.layout_result if self.main else None

    @property
    def candidate(self) -> layout_mod.Candidate | None:
        return self.main.candidate if self.main else None

    @property
    def option(self) -> TrainingOption | None:
        return self.main.option if self.main else None

    @property
    def precision(self) -> str:
        return precision(self.spec, self.config)

    @property
    def max_seq(self) -> int:
        """The sequence cap of the last training stage (the user's, the config's, or 4096)."""
        if self.train is not None:
            return resolve.seq_cap(self.spec, self.train, self.config)
        if self.config:
            return self.config.max_seq_length
        return min(4096, self.spec.model.architecture.max_position_embeddings)


def precision(spec: Spec, config: CustomizationConfig | None) -> str:
    """fp32 on CPU, else the config's precision (bf16-mixed without one)."""
    if spec.inventory.gpu.name == "cpu":
        return "fp32"
    return config.precision if config else "bf16-mixed"


def needs_sft_stage(method: TrainMethod | None, spec: Spec) -> bool:
    """An SFT stage runs first: the base of a DPO stage, or a GRPO cold start."""
    return method is not None and rules(method).base_stage(method, spec)


def resolve_launcher(spec: Spec) -> str:
    """`auto`: slurm when the inventory has a scheduler, local bash on a CPU inventory, else torchrun."""
    kind = spec.launcher.kind
    if kind != "auto":
        return kind
    if spec.inventory.scheduler == "slurm":
        return "slurm"
    return "local" if spec.inventory.gpu.name == "cpu" else "torchrun"
