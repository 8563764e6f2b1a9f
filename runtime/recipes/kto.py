"""Kahneman-Tversky optimisation (method kto) through TRL's KTOTrainer.

What runs is what plan.json says (the train stage's resolved Kto):

* the policy starts from the train_sft stage's model (stage input "base") when the plan has one,
  else from method.sft_base, else from the plan's model;
* finetuning_type lora: a LoRA adapter (method.lora) on the frozen base; all_weights: every weight;
* the reference, as method.effective_reference says (a frozen copy, the adapters disabled, or
  log-probs precomputed once), as for DPO;
* loss: TRL's KTO loss with method.beta, desirable answers weighted by method.desirable_weight and
  undesirable ones by method.undesirable_weight; the KL baseline comes from mismatched answers of
  the same batch.

Data: unpaired feedback ({prompt, completion, label}: each answer alone, desirable or not) or
preference pairs (each pair is one desirable and one undesirable answer), rendered through the
stage's prompt format as SFT renders prompt + completion. Validation pairs (the unpaired format
keeps pairs in validation/, for the gate's preference accuracy) are unpaired the same way.

Lifecycle: runtime.lifecycle; every metrics.jsonl line also carries TRL's KTO metrics: kl,
rewards/chosen, rewards/rejected, rewards/margins (eval_ prefixed on epoch lines).
"""

from __future__ import annotations

import random
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
from schemas.method import Kto
from schemas.plan import PromptFormat
from schemas.records import FIELDS

PROMPT = FIELDS["preference"][0]
CHOSEN = FIELDS["preference"][1]
REJECTED = FIELDS["preference"][2]
COMPLETION = FIELDS["unpaired_preference"][1]
FORMATS = ("unpaired_preference", "preference")
# TRL's per-step KTO metrics copied into metrics.jsonl
KTO_KEYS = ("kl", "rewards/chosen", "rewards/rejected", "rewards/margins")


# ----------------------------------------------------------------------------- 1. data


def feedback_rows(fmt: PromptFormat, records: list[dict]) -> tuple[list[dict], int]:
    """KTOTrainer rows {prompt, completion, label} in the stage's prompt format (a preference pair gives a desirable
    and an undesirable row); and how many records were skipped as malformed."""
    out: list[dict] = []
    skipped = 0
    for record in records:
        prompt = first_text(record, PROMPT)
        if isinstance(record.get("label"), bool):
            answers = [(first_text(record, COMPLETION), record["label"])]
        else:
            answers = [(first_text(record, CHOSEN), True), (first_text(record, REJECTED), False)]
        if not prompt or not all(text for text, _ in answers):
            skipped += 1
            continue
        for text, label in answers:
            row = prompt_completion(fmt, prompt, text or "")
            out.append({"prompt": row["prompt"], "completion": row["completion"], "label": label})
    return out, skipped


# ----------------------------------------------------------------------------- 2. the TRL config


def trl_config(
    ctx: RunContext, method: Kto, checkpoints: Path, n_train: int, has_val: bool, tty: bool, par: Parallel
) -> tuple[Any, int]:
    """TRL's KTOConfig (the shared schedule of runtime.trainer.training_args plus the method's KTO values) and the
    optimizer steps per epoch."""
    from trl import KTOConfig

    base, steps_per_epoch = training_args(ctx, method, checkpoints, n_train, has_val, tty, par)
    args = as_config(
        base,
        KTOConfig,
        beta=method.beta,
        desirable_weight=method.desirable_weight,
        undesirable_weight=method.undesirable_weight,
        max_length=base.max_length,
        precompute_ref_log_probs=method.effective_reference == "precomputed",
        # TRL's default, stated: no dropout (LoRA's too), so the policy's and the reference's log-probabilities
        # compare; the estimator prices these stages without dropout copies (docs/estimator.md, 2.7b)
        disable_dropout=True,
        # the KL baseline pairs each answer with its neighbour's prompt in a fixed-order batch (TRL refuses random
        # sampling with it); the rows are shuffled once, by the method's seed, before training instead
        train_sampling_strategy="sequential",
        gradient_checkpointing=False,
        logging_steps=max(1, min(50, min(steps_per_epoch, method.max_steps or steps_per_epoch) // 5)),
    )
    return args, steps_per_epoch


# ----------------------------------------------------------------------------- the recipe: 1 -> 2 -> 3 -> fit


def run(ctx: RunContext, method: Kto) -> None:
    plan = ctx.plan
    if plan.spec.data.format not in FORMATS:
        raise StageFailed(
            f"KTO needs answers labelled desirable or undesirable (unpaired_preference) or preference pairs; "
            f"{plan.spec.data.path} is {plan.spec.data.format}"
        )
    lora = method.finetuning_type == "lora"
    reference = method.effective_reference
    out = output_dir(ctx, lora)

    # 1. data, in the stage's prompt format
    r = common.records(ctx, method)
    train_rows, skipped = feedback_rows(r.fmt, r.train)
    random.Random(method.seed).shuffle(train_rows)  # sequential sampling (trl_config): the order is this draw
    val_rows, val_skipped = feedback_rows(r.fmt, r.validation)
    if skipped or val_skipped:
        ctx.log(
            f"skipped {skipped} training and {val_skipped} validation record(s) without a prompt and labelled answers "
            "(validate_data lists them)"
        )
    desirable = sum(row["label"] for row in train_rows)
    if not desirable or desirable == len(train_rows):
        raise StageFailed(
            f"KTO needs desirable and undesirable answers; {plan.spec.data.path} has {desirable} desirable of "
            f"{len(train_rows)}: add the missing kind (label true / false)"
        )

    # 2. the TRL config, and where a killed run resumes
    sched = common.schedule(ctx, sys.modules[__name__], method, len(train_rows), bool(val_rows), KTO_KEYS)

    # 3. the policy, its reference, the trainer
    from trl import KTOTrainer

    model = load_for_training(plan, r.source, lora, sched.par, method.lora.quantization if lora else None)
    ref_model = common.reference_copy(model, reference)
    with threads_for(model):
        trainer, _ = common.trainer(KTOTrainer, model, method, r, sched, train_rows, val_rows, ref_model=ref_model)
        what = f"LoRA r={method.lora.adapter_dim}" if lora else "all weights"
        ctx.log(
            f"kto: {what} ({trainable_params(trainer.model):,} trainable) from {short_name(ctx, r.source)}, "
            f"reference {reference}, beta {method.beta:g}, weights desirable {method.desirable_weight:g} / "
            f"undesirable {method.undesirable_weight:g}, {len(train_rows)} train answers ({desirable} desirable) / "
            f"{len(val_rows)} validation, ~{sched.steps_per_epoch} steps/epoch x {method.epochs} epochs"
            + (f" (max_steps {method.max_steps})" if method.max_steps else "")
            + f", lr {method.learning_rate:g}, seq {sched.args.max_length}, {world_size()} process(es)"
        )
        ctx.status.update(
            method="kto",
            finetuning_type=method.finetuning_type,
            reference=reference,
            resumed_from=sched.resumed_from,
            output=str(out.relative_to(ctx.bundle)),
        )

        # 4. fit, then save the adapter or the model
        fit(ctx, trainer, sched.lifecycle, method, sched.resume, sched.checkpoints, out)
