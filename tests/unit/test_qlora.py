"""QLoRA (method.lora.quantization=4bit): the 4-bit base's memory by hand, the 70B plan on 4x A100 40GB that
plain LoRA cannot fit, the fix that names it, where it is refused (CPU, tensor parallel, full fine-tuning)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from planner import estimator as est
from planner.compose import load
from schemas.knowledge import Estimator
from schemas.method import Lora, Sft
from tests.unit.helpers import make_plan, run_json

GB = 10**9
QLORA_70B = (
    "+goal=tone",
    "model=llama-3.1-70b-instruct",
    "inventory=a100-40gb-4",
    "method=lora",
    "method.lora.quantization=4bit",
)


def _arch_70b():
    spec, _ = load(["+goal=tone", "model=llama-3.1-70b-instruct", "inventory=a100-40gb-4"])
    return spec.model.architecture


def test_4bit_weights_by_hand():
    """Llama 3.1 70B: 80 layers of q (8192x8192), k and v (8192x1024), o (8192x8192), gate, up and down
    (8192x28672) in NF4 with double-quantized constants; the embedding, lm_head and norms in fp32; one
    dequantized gate_proj in bf16."""
    arch = _arch_70b()
    per_layer = 2 * 8192 * 8192 + 2 * 8192 * 1024 + 3 * 8192 * 28672
    quantized = 80 * per_layer
    assert est.quantized_params(arch) == quantized == 68_451_041_280
    constants = (8 / 64 + 32 / (64 * 256)) / 8  # 0.127 bits per parameter (QLoRA, section 3)
    assert constants * 8 == pytest.approx(0.127, abs=5e-4)
    rest = 70_553_706_496 - quantized  # 2 x 128256 x 8192 embeddings + norms
    assert rest == 2 * 128256 * 8192 + (2 * 80 + 1) * 8192
    frozen = quantized * (0.5 + constants) + rest * 4
    assert est.qlora_frozen_bytes(arch) == pytest.approx(frozen)
    assert frozen / GB == pytest.approx(43.73, abs=0.01)
    buffer = 8192 * 28672 * 2
    shape = est.Shape(1, 4, 1, 1, 1, 8, 512, "fsdp", True)
    mem = est.memory(arch, Lora(lora={"quantization": "4bit"}), shape, "bf16-mixed", Estimator())
    assert mem.weights == int(frozen / 4 + buffer)
    assert mem.grads == mem.optimizer == 0
    assert mem.adapters == est.ADAPTER_BYTES * est.lora_trainable(arch, Lora().lora)


def test_plain_lora_against_qlora():
    """The 4-bit base is about a third of the bf16 one; adapters, activations and logits are the same."""
    arch = _arch_70b()
    shape = est.Shape(1, 2, 1, 1, 1, 8, 512, "fsdp", True)
    plain = est.memory(arch, Lora(), shape, "bf16-mixed", Estimator())
    q = est.memory(arch, Lora(lora={"quantization": "4bit"}), shape, "bf16-mixed", Estimator())
    assert plain.weights == int(2 * 70_553_706_496 / 2)
    assert q.weights / plain.weights == pytest.approx(0.313, abs=0.005)
    assert (q.adapters, q.activations, q.logits) == (plain.adapters, plain.activations, plain.logits)
    assert plain.total / GB == pytest.approx(76.1, abs=0.1)
    assert q.total / GB == pytest.approx(27.9, abs=0.1)


def test_acceptance_70b_qlora_on_four_a100_40gb(capsys):
    code, plan, err = run_json(capsys, *QLORA_70B)
    assert code == 0, err
    assert plan is not None and plan["feasible"]
    assert plan["spec"]["method"]["lora"]["quantization"] == "4bit"  # resolved in the plan
    lay = plan["layout"]
    assert lay["tensor_parallel"] == 1 and lay["sharding"] == "fsdp"
    mem = plan["estimate"]["memory_per_gpu_bytes"]
    assert mem["total"] <= 0.9 * 40 * GB


def test_plain_lora_70b_does_not_fit_and_the_fix_names_qlora(capsys):
    code, plan, _ = run_json(capsys, *QLORA_70B[:4])
    assert code == 1 and plan is not None
    (fit,) = [f for f in plan["findings"] if f["code"] == "memory-fit" and f["severity"] == "error"]
    assert "38.0 GB per GPU > 36.0 GB usable" in fit["message"]
    assert "method.lora.quantization=4bit" in fit["fix"]
    assert "quantization" not in plan["spec"]["method"]["lora"]  # null serialises as before the key existed


def test_auto_passes_quantization_to_the_lora_rung(capsys):
    code, plan, err = run_json(capsys, *QLORA_70B[:3], "method=auto", "method.lora.quantization=4bit")
    assert code == 0, err
    assert plan is not None and plan["decision"]["method"] == "lora"


def test_cpu_inventory_refuses_4bit():
    plan = make_plan(
        "+goal=tone", "model=tiny-llama", "inventory=local", "method=lora", "method.lora.quantization=4bit"
    )
    assert not plan.feasible
    (f,) = [f for f in plan.findings if f.code == "qlora-cpu"]
    assert f.severity == "error" and f.path == "method.lora.quantization"
    assert "method.lora.quantization=null" in f.fix


def test_pinned_tensor_parallel_refused():
    plan = make_plan(*QLORA_70B, "layout.tensor_parallel=2", "layout.gpus_per_node=2")
    assert [f.path for f in plan.findings if f.code == "qlora-tensor-parallel"] == ["layout.tensor_parallel"]


def test_published_tp_option_replanned_without_tp():
    plan = make_plan(*QLORA_70B[:2], "inventory=dgx-h100", *QLORA_70B[3:])
    assert plan.feasible
    assert plan.layout.tensor_parallel == 1 and plan.layout.sharding == "fsdp"
    assert [f.severity for f in plan.findings if f.code == "qlora-tensor-parallel"] == ["info"]


def test_quantization_needs_lora_finetuning():
    with pytest.raises(ValidationError, match="finetuning_type all_weights"):
        Sft(lora={"quantization": "4bit"})
