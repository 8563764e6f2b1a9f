"""How the compiled bundle is launched: local bash, torchrun on one node, or Slurm."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Frozen

LauncherKind = Literal["auto", "local", "torchrun", "slurm"]


class Launcher(Frozen):
    """Launch target; `auto` takes slurm when the inventory has a scheduler, local on CPU, else torchrun."""

    kind: LauncherKind = "auto"
    rdzv_port: int = Field(29500, ge=1024, le=65535, description="c10d rendezvous port on the head node.")
    requeue: int = Field(1, ge=0, le=10, description="Times a failed Slurm stage is requeued.")
    cpus_per_task: int | None = Field(None, ge=1, description="Slurm cpus-per-task; null: all CPUs of the node.")
    python: str = Field("python", description="Python interpreter on the compute nodes.")
    env_passthrough: tuple[str, ...] = Field(
        ("HF_TOKEN", "WANDB_API_KEY", "HF_HOME"),
        description="Environment variables the scripts pass through (never written into files).",
    )
