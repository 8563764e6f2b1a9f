"""Checks of a QLoRA plan (method.lora.quantization): where bitsandbytes' 4-bit base can run, and how it splits."""

from __future__ import annotations

from collections.abc import Iterator

from planner.checks.base import Group, finding
from planner.draft import Draft
from schemas.plan import Finding, Layout

check = Group()


def _quantization(d: Draft) -> str | None:
    if d.train is None or d.train.finetuning_type != "lora":
        return None
    return d.train.lora.quantization


@check("qlora-cpu")
def _cpu(d: Draft, layout: Layout) -> Iterator[Finding]:
    q = _quantization(d)
    if q is not None and d.spec.inventory.gpu.name == "cpu":
        yield finding(
            "error",
            "qlora-cpu",
            "method.lora.quantization",
            f"method.lora.quantization={q}: bitsandbytes' NF4 kernels run on CUDA GPUs; inventory "
            f"{d.spec.inventory.name} is a CPU, where the runtime refuses a 4-bit base",
            "remove it (method.lora.quantization=null) for plain LoRA on CPU, or plan for a GPU inventory",
        )


@check("qlora-tensor-parallel")
def _tensor_parallel(d: Draft, layout: Layout) -> Iterator[Finding]:
    q = _quantization(d)
    if q is None or layout.source == "none":
        return
    if layout.tensor_parallel > 1:
        path = "layout.tensor_parallel" if d.spec.layout.tensor_parallel else "model.config"
        yield finding(
            "error",
            "qlora-tensor-parallel",
            path,
            f"tensor parallel {layout.tensor_parallel} with method.lora.quantization={q}: transformers' "
            "tensor-parallel plans do not split bitsandbytes' 4-bit weights",
            "set layout.tensor_parallel=1; split the model with layout.sharding=fsdp",
        )
    elif (  # a published option with PP too is reported by layout-pp-not-executable
        d.option is not None
        and d.option.tensor_parallel_size > 1
        and d.option.pipeline_parallel_size == 1
        and d.candidate is not None
        and d.candidate.note
    ):
        o = d.option
        yield finding(
            "info",
            "qlora-tensor-parallel",
            "model.config",
            f"{d.config.urn if d.config else 'the config'} publishes {o.training_type}/{o.finetuning_type} with "
            f"TP{o.tensor_parallel_size}; a 4-bit base is not split by tensor parallel, so the plan runs "
            f"{d.candidate.note}; memory is estimated for that",
            "to split it otherwise, pin layout.sharding and layout.gpus_per_node",
        )
