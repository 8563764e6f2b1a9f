"""How the compiled bundle is launched: local bash, torchrun on one node, or Slurm."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.base import Frozen

LauncherKind = Literal["auto", "local", "torchrun", "slurm"]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Launcher(Frozen):
    """Launch target; `auto` takes slurm when the inventory has a scheduler, local on CPU, else torchrun."""

    kind: LauncherKind = "auto"
    rdzv_port: int = Field(29500, ge=1024, le=65535, description="c10d rendezvous port on the head node.")
    requeue: int = Field(
        1,
        ge=0,
        le=10,
        description="Times Slurm may requeue a stage (after a node failure or preemption) before the stage gives up.",
    )
    cpus_per_task: int | None = Field(
        None,
        ge=1,
        le=65_536,
        description="Slurm cpus-per-task; null: all CPUs of the node for a stage that uses all its "
        "GPUs, a per-GPU share of them for a smaller stage.",
    )
    python: str = Field("python", min_length=1, description="Python interpreter on the compute nodes.")
    env_passthrough: tuple[EnvName, ...] = Field(
        ("HF_TOKEN", "WANDB_API_KEY", "HF_HOME"),
        description="Environment variables the scripts pass through (never written into files).",
    )
