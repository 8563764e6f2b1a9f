"""The plan is the run: the TRL / PEFT config objects each training stage would train with hold exactly
the values plan.json records for that stage, field by field, over a matrix of plans (LoRA, full SFT,
SFT -> DPO, SFT -> KTO, SFT -> GRPO; method=auto and pinned; with overrides). No training: the configs are built the
way the stages build them."""

from __future__ import annotations

import pytest

from runtime.context import RunContext
from runtime.parallel import Parallel, stage_layout
from runtime.recipes import RECIPES
from runtime.trainer import lora_config
from tests.runtime.helpers import write_bundle

pytestmark = pytest.mark.runtime

MATRIX = {
    "lora-auto": ("+goal=tone",),
    "lora-override": ("+goal=tone", "method.learning_rate=2e-3", "method.lora.adapter_dim=8"),
    "lora-pinned": ("+goal=tone", "method=lora", "method.epochs=3", "method.batch_size=16"),
    "sft-pinned": ("+goal=tone", "method=sft", "method.warmup_steps=7", "method.weight_decay=0.01"),
    "dpo-auto": ("+goal=safety_alignment",),
    "dpo-batch": ("+goal=safety_alignment", "method=dpo", "method.batch_size=16", "method.beta=0.2"),
    "kto-auto": ("+goal=safety_alignment", "data=safety_feedback"),
    "kto-lora": ("+goal=safety_alignment", "method=kto", "method.finetuning_type=lora", "method.beta=0.3",
                 "method.undesirable_weight=1.2"),
    "grpo-auto": ("+goal=math_reasoning",),
    "grpo-pinned": ("+goal=math_reasoning", "method=grpo", "method.cold_start_sft=true",
                    "method.num_generations_per_prompt=4", "method.batch_size=16"),
}


def _configs(ctx: RunContext, n_train: int = 100):
    """(TRL config, PEFT config or None) of the running stage, built as its recipe builds them."""
    method = ctx.stage.method
    assert method is not None
    lora = method.finetuning_type == "lora"
    par = Parallel(stage_layout(ctx))
    args, _ = RECIPES[method.kind].trl_config(ctx, method, ctx.dir / "checkpoints", n_train, True, False, par)
    return args, (lora_config(method) if lora else None)


@pytest.mark.parametrize("case", list(MATRIX))
def test_trainer_configs_equal_the_plan(case, tmp_path):
    bundle = write_bundle(tmp_path, *MATRIX[case])
    from schemas.plan import Plan

    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    stages = plan.training_stages
    assert stages and stages[-1].name == "train"
    assert [s.method.kind for s in stages] == list(plan.decision.pipeline)  # type: ignore[union-attr]
    for stage in stages:
        m, lay = stage.method, stage.layout
        assert m is not None and lay is not None and stage.estimate is not None
        ctx = RunContext.load(bundle / "plan.json", stage.name)
        args, peft = _configs(ctx)
        # the schedule, the batch and the sequence length
        assert args.learning_rate == m.learning_rate
        assert args.num_train_epochs == m.epochs
        assert args.max_steps == (m.max_steps or -1)
        assert args.warmup_steps == m.warmup_steps
        assert args.weight_decay == m.weight_decay
        assert args.seed == m.seed and args.data_seed == m.seed
        assert args.lr_scheduler_kwargs == {"min_lr": m.min_learning_rate}
        assert args.per_device_train_batch_size == lay.micro_batch == m.micro_batch_size
        assert args.gradient_accumulation_steps == lay.grad_accum
        assert lay.micro_batch * lay.grad_accum * lay.data_parallel == lay.global_batch == m.batch_size
        assert args.optim == {"adamw": "adamw_torch_fused", "sgd": "sgd"}.get(m.optimizer, args.optim)
        if m.kind in ("lora", "sft"):
            assert args.max_length == m.max_seq_length == lay.seq_length
            assert args.packing == m.sequence_packing
        if m.kind == "dpo":
            assert args.beta == m.beta
            assert args.max_length == m.max_seq_length
            assert args.precompute_ref_log_probs == (m.reference == "precomputed")
        if m.kind == "kto":
            assert (args.beta, args.max_length) == (m.beta, m.max_seq_length)
            assert (args.desirable_weight, args.undesirable_weight) == (m.desirable_weight, m.undesirable_weight)
            assert args.precompute_ref_log_probs == (m.reference == "precomputed")
            assert args.train_sampling_strategy == "sequential"  # the KL baseline's pairing; rows shuffled by seed
        if m.kind == "grpo":
            assert args.num_generations == m.num_generations_per_prompt
            assert args.max_completion_length == m.max_completion_length
            assert args.temperature == m.temperature and args.beta == m.kl_beta
        # the adapter
        if m.finetuning_type == "lora":
            assert peft is not None
            assert peft.r == m.lora.adapter_dim and peft.lora_alpha == m.lora.alpha
            assert peft.lora_dropout == m.lora.adapter_dropout
            targets = peft.target_modules if isinstance(peft.target_modules, str) else sorted(peft.target_modules)
            assert targets == ("all-linear" if "all-linear" in m.lora.target_modules else sorted(m.lora.target_modules))
        else:
            assert peft is None
        # nothing left for the runtime to decide
        assert m.lora.alpha is not None and m.min_learning_rate is not None and m.max_seq_length
        assert m.sharding != "auto" and m.activation_checkpointing is not None
        assert stage.prompt is not None and stage.data is not None and stage.data.files


def test_overrides_keep_the_rest_of_the_recommended_recipe(tmp_path):
    """tiny-llama recommends r16 / alpha 32 / lr 4e-3 / replay for LoRA: one override changes one value."""
    bundle = write_bundle(tmp_path, "+goal=tone", "method=lora", "method.learning_rate=2e-3")
    from schemas.plan import Plan

    train = Plan.model_validate_json((bundle / "plan.json").read_text()).stage("train")
    m = train.method
    assert m is not None and m.kind == "lora"
    assert m.learning_rate == 2e-3 and train.method_sources["learning_rate"] == "override"
    assert (m.lora.adapter_dim, m.lora.alpha, m.warmup_steps) == (16, 32, 15)
    assert train.method_sources["lora.adapter_dim"] == "recommended"
    assert m.replay is not None and m.replay.data.endswith("corpus.txt") and m.replay.ratio == 3
