"""layout.attention_implementation: resolved by the planner (auto), written in every layout of the plan, priced by
the estimator (eager keeps the seq x seq scores), and refused or warned about where flash_attention_2 cannot run."""

from __future__ import annotations

import importlib.util

import pytest

from planner.core import plan
from planner.host import Host
from planner.host import probe as probe_host
from tests.unit.helpers import make_plan, run_json

TINY = ("+goal=tone", "model=tiny-llama", "inventory=local")
H100 = ("+goal=tone", "inventory=dgx-h100")
CODES = ("attention-flash-cpu", "attention-flash-gpu", "attention-flash-package")


def plan_on(*overrides: str, host: Host | None = None):
    """The plan of `overrides` made again with what the edge probed of its host."""
    p = make_plan(*overrides)
    return plan(p.spec, p.data_stats, host)


def attention_findings(p) -> dict:
    return {f.code: f for f in p.findings if f.code in CODES}


def layouts(p):
    return [p.layout, *(s.layout for s in p.stages if s.layout is not None)]


@pytest.mark.parametrize(
    "overrides, expected",
    [
        pytest.param(H100, "flash_attention_2", id="hopper"),
        pytest.param(("+goal=tone", "inventory=l40s-4", "model=llama-3.1-8b-instruct"), "flash_attention_2", id="ada"),
        pytest.param(("+goal=safety_alignment",), "flash_attention_2", id="sft-then-dpo"),
        pytest.param(TINY, "sdpa", id="cpu"),
        pytest.param((*H100, "inventory.gpu.compute_capability=7.0"), "sdpa", id="volta"),
        pytest.param((*H100, "inventory.gpu.compute_capability=10.0"), "sdpa", id="not-listed"),
        pytest.param((*H100, "inventory.gpu.compute_capability=null"), "sdpa", id="unknown"),
        pytest.param((*H100, "layout.attention_implementation=eager"), "eager", id="pinned"),
    ],
)
def test_auto_resolves_per_gpu_and_every_layout_carries_it(overrides, expected):
    p = make_plan(*overrides)
    assert p.spec.layout.attention_implementation in ("auto", expected)
    assert len(layouts(p)) >= 2
    assert {lay.attention_implementation for lay in layouts(p)} == {expected}
    assert f'"attention_implementation":"{expected}"' in p.model_dump_json()


def test_eager_prices_the_score_matrix_and_sdpa_only_its_padding_mask():
    by = {
        a: make_plan(*H100, "layout.micro_batch=4", f"layout.attention_implementation={a}")
        for a in ("flash_attention_2", "sdpa", "eager")
    }
    lay = by["eager"].layout
    assert {p.layout.activation_checkpointing for p in by.values()} == {False}
    assert {(p.layout.seq_length, p.layout.micro_batch) for p in by.values()} == {(lay.seq_length, 4)}
    arch = by["eager"].spec.model.architecture
    # priced at the widest micro batch (each pads to its longest record)
    s, b, layers, heads = by["eager"].estimate.widest_batch_tokens, lay.micro_batch, arch.num_layers, arch.num_heads
    act = {a: p.estimate.memory_per_gpu_bytes.activations for a, p in by.items()}
    # eager and padded sdpa get K and V repeated to the query heads (transformers' repeat_kv)
    repeated = layers * 2 * (arch.q_dim - arch.kv_dim) * s * b * 2
    # bf16: the fp32 softmax output and its bf16 copy, 6 bytes a score, every head of every layer
    assert act["eager"] - act["flash_attention_2"] == pytest.approx(
        layers * heads * s * s * b * 6 + repeated, abs=2 * layers
    )
    # sdpa: a padded micro batch keeps its mask as a bf16 bias, one per layer
    assert act["sdpa"] - act["flash_attention_2"] == pytest.approx(layers * b * s * s * 2 + repeated, abs=2 * layers)
    totals = {a: p.estimate.memory_per_gpu_bytes.total for a, p in by.items()}
    assert totals["flash_attention_2"] < totals["sdpa"] < totals["eager"]


def test_eager_at_long_sequences_changes_the_layout():
    # 8B LoRA at 4096 tokens on one H100 (the search, within one node): with flash attention a micro batch of one
    # fits without recompute; eager's 32 x 32 heads of 4096^2 scores (3.2 GB a layer) need activation checkpointing
    # packed: every row is 4096 tokens (unpacked, a batch pads only to its longest record, ~100 tokens in tone)
    long = (
        "+goal=tone",
        "inventory=dgx-h100",
        "method=lora",
        "method.max_seq_length=4096",
        "method.sequence_packing=true",
        "layout.nodes=1",
    )
    flash = make_plan(*long)
    eager = make_plan(*long, "layout.attention_implementation=eager")
    assert flash.feasible and eager.feasible
    assert flash.layout.seq_length == eager.layout.seq_length == 4096
    assert (flash.layout.gpus, flash.layout.activation_checkpointing) == (1, False)
    assert (eager.layout.gpus, eager.layout.activation_checkpointing) == (1, True)


def test_flash_attention_on_a_cpu_is_an_error_and_its_fix_plans():
    p = make_plan(*TINY, "layout.attention_implementation=flash_attention_2")
    f = attention_findings(p)["attention-flash-cpu"]
    assert (f.severity, f.path) == ("error", "layout.attention_implementation")
    assert not p.feasible
    assert "layout.attention_implementation=sdpa" in f.fix
    fixed = make_plan(*TINY, "layout.attention_implementation=sdpa")
    assert fixed.feasible and not attention_findings(fixed)


@pytest.mark.parametrize(
    "capability, severity",
    [
        pytest.param("7.0", "error", id="volta-refused"),
        pytest.param("10.0", "warning", id="newer-not-listed"),
        pytest.param("null", "warning", id="unknown"),
    ],
)
def test_flash_attention_on_a_gpu_without_it(capability, severity):
    p = make_plan(
        *H100, f"inventory.gpu.compute_capability={capability}", "layout.attention_implementation=flash_attention_2"
    )
    f = attention_findings(p)["attention-flash-gpu"]
    assert f.severity == severity and f.path == "layout.attention_implementation"
    assert "layout.attention_implementation=sdpa" in f.fix
    assert p.feasible == (severity != "error")
    fixed = make_plan(*H100, f"inventory.gpu.compute_capability={capability}", "layout.attention_implementation=sdpa")
    assert not attention_findings(fixed)


def test_a_missing_flash_attn_package_is_a_warning_only_when_the_host_was_probed():
    without = plan_on(*H100, host=Host(flash_attn=False))
    f = attention_findings(without)["attention-flash-package"]
    assert f.severity == "warning" and without.feasible
    assert "auto chose flash_attention_2" in f.message and "compute nodes" in f.message
    assert "pip install flash-attn" in f.fix and "layout.attention_implementation=sdpa" in f.fix
    assert not attention_findings(plan_on(*H100, host=Host(flash_attn=True)))
    assert not attention_findings(plan_on(*H100))  # a plan made in code knows nothing about its host
    # the host is not part of the plan: same id, same layout
    assert without.id == plan_on(*H100, host=Host(flash_attn=True)).id
    # sdpa needs no package: no warning on the same host
    assert not attention_findings(plan_on(*H100, "layout.attention_implementation=sdpa", host=Host(flash_attn=False)))


def test_the_cli_probes_this_machine(capsys):
    assert probe_host().flash_attn == (importlib.util.find_spec("flash_attn") is not None)
    code, out, _ = run_json(capsys, *H100)
    assert code == 0 and out is not None
    warned = "attention-flash-package" in {f["code"] for f in out["findings"]}
    assert warned == (importlib.util.find_spec("flash_attn") is None)


def test_an_unknown_implementation_names_the_choices(capsys):
    code, out, err = run_json(capsys, *H100, "layout.attention_implementation=flash")
    assert code == 2 and out is None
    assert "layout.attention_implementation" in err
    for choice in ("auto", "sdpa", "flash_attention_2", "eager"):
        assert choice in err
