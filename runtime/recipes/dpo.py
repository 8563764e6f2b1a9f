"""Direct preference optimisation (method dpo) through TRL's DPOTrainer.

What runs is what plan.json says (the train stage's resolved Dpo):

* the policy starts from the train_sft stage's model (stage input "base") when the plan has one,
  else from method.sft_base, else from the plan's model;
* finetuning_type lora: a LoRA adapter (method.lora) on the frozen base; all_weights: every weight;
* the reference, as method.effective_reference says: ``adapters_disabled`` (LoRA: the same model
  with the adapter switched off, no second copy), ``copy`` (a frozen deep copy of the starting
  weights), ``precomputed`` (reference log-probs computed once before training, no reference
  model kept: DPOConfig.precompute_ref_log_probs);
* loss: TRL's sigmoid DPO loss with method.beta, weighted by method.preference_loss_weight, plus
  the SFT loss on the chosen answer weighted by method.sft_loss_weight when > 0 (trl 1.16 has no
  rpo_alpha: DPOConfig(loss_type=["sigmoid", "sft"], loss_weights=[w_pref, w_sft])).

Data: preference records (prompt + chosen/rejected, or NeMo's chosen_response/rejected_response),
rendered through the stage's prompt format exactly as SFT renders prompt + chosen.

Lifecycle: runtime.lifecycle (status.json, metrics.jsonl, early stopping on the DPO val loss, SIGTERM,
resume, NaN guard); every metrics.jsonl line also carries TRL's preference metrics: rewards/chosen,
rewards/rejected, rewards/margins, rewards/accuracies (eval_ prefixed on epoch lines).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runtime.checkpoints import (
    output_dir,
    short_name,
)
from runtime.context import RunContext, StageFailed, world_size
from runtime.data import first_text, prompt_completion
from runtime.models import threads_for
from runtime.parallel import Parallel, load_for_training
from runtime.recipes import common
from runtime.trainer import (
    as_config,
    fit,
    trainable_params,
    training_args,
)
from schemas.method import Dpo
from schemas.plan import PromptFormat

PROMPT = ("prompt",)
CHOSEN = ("chosen", "chosen_response")
REJECTED = ("rejected", "rejected_response")
# TRL's per-step preference metrics copied into metrics.jsonl
PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


# ----------------------------------------------------------------------------- 1. data


def preference_rows(fmt: PromptFormat, records: list[dict]) -> tuple[list[dict], int]:
    """DPOTrainer rows {prompt, chosen, rejected} in the stage's prompt format; and how many were skipped."""
    out: list[dict] = []
    for record in records:
        prompt, chosen, rejected = first_text(record, PROMPT), first_text(record, CHOSEN), first_text(record, REJECTED)
        if not (prompt and chosen and rejected):
            continue
        good = prompt_completion(fmt, prompt, chosen)
        bad = prompt_completion(fmt, prompt, rejected)
        out.append({"prompt": good["prompt"], "chosen": good["completion"], "rejected": bad["completion"]})
    return out, len(records) - len(out)


# ----------------------------------------------------------------------------- 2. the TRL config


def trl_config(
    ctx: RunContext, method: Dpo, checkpoints: Path, n_train: int, has_val: bool, tty: bool, par: Parallel
) -> tuple[Any, int]:
    """TRL's DPOConfig (the shared schedule of runtime.trainer.training_args plus the method's DPO values) and the
    optimizer steps per epoch."""
    from trl import DPOConfig

    base, steps_per_epoch = training_args(ctx, method, checkpoints, n_train, has_val, tty, par)
    losses, weights = ["sigmoid"], [method.preference_loss_weight]
    if method.sft_loss_weight > 0:
        losses.append("sft")
        weights.append(method.sft_loss_weight)
    args = as_config(
        base,
        DPOConfig,
        beta=method.beta,
        loss_type=losses,
        loss_weights=weights,
        max_length=base.max_length,
        precompute_ref_log_probs=method.effective_reference == "precomputed",
        # TRL's default, stated: no dropout (LoRA's too), so the policy's and the reference's log-probabilities
        # compare; the estimator prices these stages without dropout copies (docs/estimator.md, 2.7b)
        disable_dropout=True,
        gradient_checkpointing=False,
        logging_steps=max(1, min(50, min(steps_per_epoch, method.max_steps or steps_per_epoch) // 5)),
    )
    return args, steps_per_epoch


# ----------------------------------------------------------------------------- the recipe: 1 -> 2 -> 3 -> fit


def run(ctx: RunContext, method: Dpo) -> None:
    plan = ctx.plan
    if plan.spec.data.format != "preference":
        raise StageFailed(
            f"DPO needs preference data (prompt, chosen, rejected); {plan.spec.data.path} is {plan.spec.data.format}"
        )
    lora = method.finetuning_type == "lora"
    reference = method.effective_reference
    if reference == "adapters_disabled" and not lora:
        raise StageFailed("reference adapters_disabled needs finetuning_type lora")
    out = output_dir(ctx, lora)

    # 1. data, in the stage's prompt format
    r = common.records(ctx, method)
    train_rows, skipped = preference_rows(r.fmt, r.train)
    val_rows, val_skipped = preference_rows(r.fmt, r.validation)
    if skipped or val_skipped:
        ctx.log(
            f"skipped {skipped} training and {val_skipped} validation record(s) without prompt, chosen and "
            "rejected (validate_data lists them)"
        )
    if not train_rows:
        raise StageFailed(f"no usable preference pairs in {plan.spec.data.path}; run the validate_data stage")

    # 2. the TRL config, and where a killed run resumes
    sched = common.schedule(ctx, sys.modules[__name__], method, len(train_rows), bool(val_rows), PREFERENCE_KEYS)
    args = sched.args

    # 3. the policy, its reference, the trainer
    from trl import DPOTrainer

    model = load_for_training(plan, r.source, lora, sched.par, method.lora.quantization if lora else None)
    ref_model = common.reference_copy(model, reference)
    with threads_for(model):
        trainer, _ = common.trainer(DPOTrainer, model, method, r, sched, train_rows, val_rows, ref_model=ref_model)
        what = f"LoRA r={method.lora.adapter_dim}" if lora else "all weights"
        loss = "+".join(f"{w:g}*{t}" for t, w in zip(args.loss_type, args.loss_weights, strict=True))
        ctx.log(
            f"dpo: {what} ({trainable_params(trainer.model):,} trainable) from {short_name(ctx, r.source)}, "
            f"reference {reference}, beta {method.beta:g}, loss {loss}, {len(train_rows)} train / "
            f"{len(val_rows)} validation pairs, ~{sched.steps_per_epoch} steps/epoch x {method.epochs} epochs"
            + (f" (max_steps {method.max_steps})" if method.max_steps else "")
            + f", lr {method.learning_rate:g}, seq {args.max_length}, {world_size()} process(es)"
        )
        ctx.status.update(
            method="dpo",
            finetuning_type=method.finetuning_type,
            reference=reference,
            resumed_from=sched.resumed_from,
            output=str(out.relative_to(ctx.bundle)),
        )

        # 4. fit, then save the adapter or the model
        fit(ctx, trainer, sched.lifecycle, method, sched.resume, sched.checkpoints, out)
