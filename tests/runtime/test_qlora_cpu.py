"""A 4-bit (QLoRA) stage on CPU is refused before any weight loads, with what to do: bitsandbytes' NF4 kernels
need a CUDA GPU (and the optional bitsandbytes package, which this machine does not have)."""

from __future__ import annotations

import pytest

from runtime.context import StageFailed
from runtime.parallel import Parallel, load_for_training
from tests.unit.helpers import make_plan


def test_cpu_refuses_4bit_before_loading():
    plan = make_plan(
        "+goal=tone", "model=tiny-llama", "inventory=local", "method=lora", "method.lora.quantization=4bit"
    )
    with pytest.raises(StageFailed, match=r"need a CUDA GPU.*method\.lora\.quantization=null"):
        load_for_training(plan, "/nonexistent/model", True, Parallel(plan.layout), "4bit")
