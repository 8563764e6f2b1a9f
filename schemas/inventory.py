"""The hardware the plan may use: an input, never a probe."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.base import MAX_GPUS_PER_NODE, MAX_NODES, Frozen, SafeName

# Written into `#SBATCH` lines, which sbatch reads without a shell: no quoting can make a space,
# quote or newline safe there, so the names are restricted to what Slurm names use anyway.
SlurmPartition = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$")]
SlurmAccount = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]+$")]


class Gpu(Frozen):
    """One accelerator type from the GPU catalog (dense bf16 figures, no sparsity)."""

    name: SafeName
    display_name: str
    memory_gb: float = Field(gt=0, le=4096, description="Device memory in GB (10^9 bytes).")
    bandwidth_gbps: float = Field(gt=0, le=1_000_000, description="Memory bandwidth in GB/s.")
    bf16_tflops: float = Field(gt=0, le=1_000_000, description="Dense bf16 TFLOP/s.")
    link: Literal["nvlink", "pcie", "none"]
    link_gbps: float = Field(ge=0, le=1_000_000)
    classes: tuple[str, ...] = Field(
        description="Customization-config GPU classes this GPU satisfies (the URN suffix after '+')."
    )
    compute_capability: float | None = Field(
        None,
        ge=1,
        le=100,
        description="CUDA compute capability, e.g. 8.0 (A100), 8.9 (L40S), 9.0 (H100); null for a CPU or when "
        "unknown. Decides whether flash_attention_2 runs (layout.attention_implementation).",
    )


class Inventory(Frozen):
    """A cluster or machine: nodes x GPUs of one type, and how jobs reach it."""

    name: SafeName
    nodes: int = Field(ge=1, le=MAX_NODES, description="Nodes in the cluster or partition.")
    gpus_per_node: int = Field(ge=1, le=MAX_GPUS_PER_NODE)
    cpus_per_node: int = Field(ge=1, le=65_536)
    memory_per_node_gb: float = Field(gt=0, le=1_048_576)
    scheduler: Literal["slurm", "none"]
    partition: SlurmPartition | None = Field(
        None, description="Slurm partition (or comma-separated list); letters, digits, '.', '_', '-'."
    )
    account: SlurmAccount | None = Field(None, description="Slurm account; letters, digits, '.', '_', '-'.")
    time_limit_hours: float | None = Field(
        24, gt=0, le=8784, description="Longest job the scheduler allows; null: no limit."
    )
    price_per_gpu_hour: float | None = Field(None, ge=0, le=10_000, description="USD per GPU-hour, for the cost line.")
    gpu: Gpu

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node
