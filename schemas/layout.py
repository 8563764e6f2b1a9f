"""What the user pins about the parallel layout; anything left null the planner decides."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import MAX_GPUS_PER_NODE, MAX_NODES, Frozen

AttentionImplementation = Literal["sdpa", "flash_attention_2", "eager"]


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
    attention_implementation: Literal["auto", AttentionImplementation] = Field(
        "auto",
        description="The attention kernel (from_pretrained's attn_implementation), priced by the estimator. "
        "auto: flash_attention_2 on a GPU whose compute capability flash-attn 2 supports (knowledge "
        "engine.flash_attention_2), else sdpa. eager materialises each head's seq x seq scores and keeps them "
        "for the backward; sdpa and flash_attention_2 do not (flash_attention_2 needs the flash_attn package "
        "on the compute nodes).",
    )

    @property
    def pinned(self) -> bool:
        return any(
            v is not None
            for v in (self.nodes, self.gpus_per_node, self.tensor_parallel, self.pipeline_parallel, self.micro_batch)
        )
