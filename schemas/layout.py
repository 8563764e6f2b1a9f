"""What the user pins about the parallel layout; anything left null the planner decides."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import MAX_GPUS_PER_NODE, MAX_NODES, Frozen


class LayoutRequest(Frozen):
    """Pins for the layout search. Null: take the config's training option, or search."""

    nodes: int | None = Field(None, ge=1, le=MAX_NODES)
    gpus_per_node: int | None = Field(None, ge=1, le=MAX_GPUS_PER_NODE)
    tensor_parallel: int | None = Field(
        None, ge=1, le=MAX_GPUS_PER_NODE, description="Tensor parallel size; within one node."
    )
    pipeline_parallel: int | None = Field(None, ge=1, le=1024)
    micro_batch: int | None = Field(None, ge=1, le=65_536)
    sharding: Literal["auto", "none", "zero1", "zero2", "fsdp"] = "auto"
    activation_checkpointing: bool | None = None

    @property
    def pinned(self) -> bool:
        return any(
            v is not None
            for v in (self.nodes, self.gpus_per_node, self.tensor_parallel, self.pipeline_parallel, self.micro_batch)
        )
