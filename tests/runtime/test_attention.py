"""The runtime loads the model with the attention kernel the plan's layout names, and what that kernel keeps for
the backward is what the estimator prices (saved tensors of a real forward, eager against sdpa)."""

from __future__ import annotations

import pytest

from planner import activations as act
from planner import estimator as est
from runtime.context import StageFailed
from runtime.models import load_model
from runtime.parallel import Parallel, load_for_training
from tests.unit.helpers import make_plan

TINY = ("+goal=tone", "model=tiny-llama", "inventory=local")


def train_layout(plan):
    return next(s.layout for s in plan.stages if s.name == "train")


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_training_and_evaluation_load_the_plans_kernel(tiny_dir, kernel):
    plan = make_plan(*TINY, f"layout.attention_implementation={kernel}")
    assert train_layout(plan).attention_implementation == kernel == plan.layout.attention_implementation
    trained = load_for_training(plan, str(tiny_dir), True, Parallel(train_layout(plan)))
    assert trained.config._attn_implementation == kernel
    evaluated = load_model(plan)
    assert evaluated.config._attn_implementation == kernel


def test_auto_on_cpu_loads_sdpa(tiny_dir):
    plan = make_plan(*TINY)
    assert plan.spec.layout.attention_implementation == "auto"
    model = load_for_training(plan, str(tiny_dir), True, Parallel(train_layout(plan)))
    assert model.config._attn_implementation == "sdpa"


def test_flash_attention_on_cpu_is_refused_with_the_fix(tiny_dir):
    plan = make_plan(*TINY, "layout.attention_implementation=flash_attention_2")  # not feasible: planned anyway
    with pytest.raises(StageFailed, match=r"flash_attention_2.*CUDA.*layout\.attention_implementation=sdpa"):
        load_for_training(plan, str(tiny_dir), True, Parallel(train_layout(plan)))
    with pytest.raises(StageFailed, match=r"layout\.attention_implementation=sdpa"):
        load_model(plan)


def test_what_each_kernel_keeps_is_what_the_estimator_prices(tiny_dir):
    """A padded micro batch of two through the tiny model in fp32 (the CPU plan's precision): the bytes autograd
    saves with eager minus those with sdpa are the estimator's score terms, per layer, to within the per-row
    log-sum-exp sdpa keeps (a*s*b fp32 values)."""
    import torch

    plan = make_plan(*TINY)
    arch = plan.spec.model.architecture
    s, b = 128, 2
    ids = torch.randint(3, arch.vocab_size, (b, s), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(b, s, dtype=torch.long)
    mask[1, : s // 4] = 0  # the second row is padded: sdpa gets a mask
    saved: dict[str, int] = {}
    for kernel in ("eager", "sdpa"):
        lay = train_layout(make_plan(*TINY, f"layout.attention_implementation={kernel}"))
        model = load_for_training(plan, str(tiny_dir), False, Parallel(lay))  # all weights: fp32
        model.train()
        storages: dict[int, int] = {}

        def pack(t, storages=storages):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, attention_mask=mask, labels=ids)
        saved[kernel] = sum(storages.values())
    wb = est.weight_bytes(plan.layout.precision)
    assert wb == 4
    per_layer = act.score_bytes_per_layer(arch, s, b, 1, "eager", wb) - act.score_bytes_per_layer(
        arch, s, b, 1, "sdpa", wb
    )
    assert per_layer == arch.num_heads * s * s * b * 4 - b * s * s * 4
    log_sum_exp = arch.num_heads * s * b * 4
    measured = saved["eager"] - saved["sdpa"]
    assert measured == pytest.approx(arch.num_layers * per_layer, abs=arch.num_layers * log_sum_exp)
