"""planner.resolve: one merge of schema defaults, the model's recommended recipe and the user's overrides, and
one sequence-length rule (tiny-llama recommends LoRA r16 / alpha 32 / lr 4e-3 / warmup 15 / replay 3x)."""

from __future__ import annotations

import pytest
from pytest import param

from tests.unit.helpers import make_plan

TINY = ("+goal=tone", "model=tiny-llama", "inventory=local")


@pytest.mark.parametrize("overrides, key, value, source", [
    param((), "learning_rate", 4e-3, "recommended", id="auto-recommended"),
    param(("method.learning_rate=2e-3",), "learning_rate", 2e-3, "override", id="auto-override"),
    param(("method.learning_rate=2e-3",), "lora.adapter_dim", 16, "recommended", id="auto-override-keeps-rank"),
    param(("method=lora", "method.epochs=3"), "warmup_steps", 15, "recommended", id="pinned-keeps-warmup"),
    param(("method=lora", "method.lora.adapter_dim=8"), "lora.alpha", 32, "recommended", id="rank-keeps-alpha"),
    param(("method=lora", "method.lora.alpha=null", "method.lora.adapter_dim=8"), "lora.alpha", 8, "override",
          id="alpha-null-resolves-to-rank"),
    param(("method=sft", "method.learning_rate=1e-4"), "min_learning_rate", 1e-5, "derived", id="lr-floor-derived"),
    param((), "micro_batch_size", 8, "derived", id="micro-batch-from-layout"),
    param(("method.replay.ratio=4",), "replay.ratio", 4, "override", id="part-of-a-recommended-block"),
])
def test_values_and_their_sources(overrides, key, value, source):
    train = make_plan(*TINY, *overrides).stage("train")
    data = train.method.model_dump(mode="json")
    for part in key.split("."):
        data = data[part]
    assert data == pytest.approx(value) and train.method_sources[key] == source


def test_an_auto_override_the_rung_lacks_is_a_warning_at_its_key():
    plan = make_plan(*TINY, "method.beta=0.3")
    assert plan.decision.method == "lora" and plan.feasible
    found = [f for f in plan.findings if f.code == "method-override-ignored"]
    assert [(f.severity, f.path) for f in found] == [("warning", "method.beta")]
    incomplete = make_plan("+goal=tone", "method.replay.ratio=4")  # llama-3.1-8b recommends no replay to complete
    assert [f.path for f in incomplete.findings if f.code == "method-override-ignored"] == ["method.replay"]


def test_the_sequence_covers_the_longest_record_or_says_how_many_are_cut():
    plan = make_plan(*TINY)
    train = plan.stage("train")
    assert train.method.max_seq_length >= plan.data_stats.training.tokens_max
    assert not [f for f in plan.findings if f.code == "data-truncated"]
    short = make_plan(*TINY, "method.max_seq_length=40")
    assert short.stage("train").method.max_seq_length == 40
    cut = [f for f in short.findings if f.code == "data-truncated"]
    assert len(cut) == 1 and cut[0].path == "method.max_seq_length"
    n, exact = short.data_stats.training.longer_than(40 - 1)  # the plain template "{prompt} {completion}": 1 token
    assert n and f"{'' if exact else 'at least '}{n:,} of 400 training records" in cut[0].message


def test_the_sft_base_of_dpo_is_a_stage_of_its_own():
    plan = make_plan("+goal=safety_alignment", "model=tiny-llama", "inventory=local", "method=dpo",
                     "method.batch_size=16")
    sft, dpo = plan.stage("train_sft"), plan.stage("train")
    assert (sft.method.kind, dpo.method.kind) == ("sft", "dpo")
    assert dpo.layout.global_batch == 16 and sft.layout.global_batch == 8  # each stage its own batch
    assert sft.data.use == "chosen" and dpo.data.use == "as_is"
    floors = [f.message for f in plan.findings if f.code == "data-floor"]
    assert any("full SFT stage before DPO" in m for m in floors)
