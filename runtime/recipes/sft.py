"""Supervised fine-tuning (method lora or sft, and the train_sft stage before DPO or GRPO) through TRL's SFTTrainer.

What runs is what plan.json says: the stage's resolved method (every hyperparameter), its own layout (micro
batch, accumulation, precision, sharding, tensor parallel), its data files (checked against their planned
sha256) and prompt format, and the artifact paths. LoRA trains an adapter (method.lora) on a frozen base;
sft trains every weight.

Data: records become TRL prompt/completion rows in the stage's prompt format, so the loss covers the
completion only: the tokenizer's chat template (conversational rows, TRL applies it) or the config's plain
template (runtime.models.render_example); preference records train on prompt + chosen (the SFT base of
DPO); prompt/answer on prompt + "Answer: <answer>" (a GRPO cold start); documents on the whole text.
Records longer than max_seq_length are counted and reported before training (status.json
truncated_examples). method.replay mixes general text into the training batches (runtime.replay).

Lifecycle (runtime.lifecycle): status.json and metrics.jsonl, evaluation and a checkpoint every epoch, early
stopping on val_loss, resume from the last checkpoint after a kill, SIGTERM -> checkpoint + Cancelled, a
non-finite loss -> StageFailed naming the step.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runtime import replay
from runtime.checkpoints import output_dir
from runtime.context import RunContext, StageFailed, world_size
from runtime.data import first_text, messages_text, prompt_completion, truncated_rows
from runtime.models import threads_for
from runtime.parallel import Parallel, load_for_training
from runtime.recipes import common
from runtime.trainer import (
    fit,
    trainable_params,
    training_args,
)
from schemas.method import Lora, Sft
from schemas.plan import PromptFormat, StageData
from schemas.records import FORMATS, shape

ANSWER_PREFIX = "Answer:"  # where runtime.rewards and the pass_at_1 metric read a final answer


# ----------------------------------------------------------------------------- 1. data


def rows(data: StageData, fmt: PromptFormat, records: list[dict]) -> tuple[list[dict], int]:
    """TRL dataset rows for the stage's data format and prompt format, and how many records were skipped as
    malformed (an undesirable answer of unpaired feedback is left out on purpose, not skipped)."""
    out: list[dict] = []
    undesirable = 0
    for record in records:
        row: dict | None = None
        if data.format == "unpaired_preference" and record.get("label") is False:
            undesirable += 1
            continue
        if shape(data.format) == "messages":  # ShareGPT too: its records come converted (runtime.data)
            row = _messages(fmt, record.get("messages"))
        elif data.format == "documents":
            text = first_text(record, ("text",))
            row = {"text": text} if text else None
        else:
            supervised = FORMATS[data.format].supervised
            if supervised is None:
                raise StageFailed(f"an SFT stage does not train on {data.format} records")
            prompt_names, completion_names = supervised
            prompt, completion = first_text(record, prompt_names), first_text(record, completion_names)
            if data.format == "prompt_answer" and completion:  # a GRPO cold start: the answer the rewards read
                completion = f"{ANSWER_PREFIX} {completion.strip()}"
            row = prompt_completion(fmt, prompt, completion) if prompt and completion else None
        if row is not None:
            out.append(row)
    return out, len(records) - len(out) - undesirable


def _messages(fmt: PromptFormat, messages: Any) -> dict | None:
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    if not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    ):
        return None
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        return None
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    if fmt.kind == "chat_template":
        return prompt_completion(fmt, turns[:-1], turns[-1]["content"])
    return prompt_completion(fmt, messages_text(turns[:-1]), turns[-1]["content"])


# ----------------------------------------------------------------------------- 2. the TRL config


def trl_config(
    ctx: RunContext, method: Lora | Sft, checkpoints: Path, n_train: int, has_val: bool, tty: bool, par: Parallel
) -> tuple[Any, int]:
    """TRL's SFTConfig for the stage and the optimizer steps per epoch: runtime.trainer.training_args as is."""
    return training_args(ctx, method, checkpoints, n_train, has_val, tty, par)


# ----------------------------------------------------------------------------- 3. the trainer


def trainer_class() -> type:
    from transformers import Trainer
    from trl import SFTTrainer

    class _Trainer(SFTTrainer):
        """SFTTrainer (common.trainer adds the NaN guard) that mixes replay text into the training batches (only those:
        evaluation keeps the plain collator) and, on CPU, computes the loss from the full logits."""

        train_collator = None
        tokens_seen = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self.args.use_cpu or self.aux_loss_enabled:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # CPU: transformers' causal-LM loss on the full logits (the same sum over label tokens / tokens in the
            # batch). TRL's fused LM head scores the vocabulary in tiles to save GPU memory; on CPU the tiles run
            # as Python loops and took 64 of 80 s of the tone train stage (the backbone: 15 s).
            inputs["use_cache"] = False
            if model.training:  # what TRL reports as num_tokens (the Lifecycle's tokens/s)
                if "attention_mask" in inputs:
                    self.tokens_seen += int(inputs["attention_mask"].sum())
                elif "position_ids" in inputs:
                    self.tokens_seen += int(inputs["position_ids"].size(1))
            return Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

        def log(self, logs, start_time=None):
            if self.args.use_cpu and self.model is not None and self.model.training and "loss" in logs:
                logs["num_tokens"] = float(self.tokens_seen)
            super().log(logs, start_time)

        def get_train_dataloader(self):
            if self.train_collator is None:
                return super().get_train_dataloader()
            plain, self.data_collator = self.data_collator, self.train_collator
            try:
                return super().get_train_dataloader()
            finally:
                self.data_collator = plain

    return _Trainer


# ----------------------------------------------------------------------------- the recipe: 1 -> 2 -> 3 -> fit


def run(ctx: RunContext, method: Lora | Sft) -> None:
    plan = ctx.plan
    lora = method.finetuning_type == "lora"
    out = output_dir(ctx, lora)

    # 1. data, in the stage's prompt format
    r = common.records(ctx, method)
    data = r.data
    train_rows, skipped = rows(data, r.fmt, r.train)
    val_rows, val_skipped = rows(data, r.fmt, r.validation)
    if skipped or val_skipped:
        ctx.log(
            f"skipped {skipped} training and {val_skipped} validation record(s) without the "
            f"{data.format} fields (validate_data lists them)"
        )
    if not train_rows:
        raise StageFailed(
            f"no usable training records in {data.root or plan.spec.data.path or 'the mixture'} "
            f"(format {data.format}); "
            "run the validate_data stage for the file:line of each problem"
        )
    cut = truncated_rows(r.tokenizer, train_rows, method.max_seq_length)
    if cut:
        ctx.log(
            f"warning: {cut} of {len(train_rows)} training examples are longer than max_seq_length "
            f"{method.max_seq_length} and are cut (the plan's data-truncated finding says how to avoid it)"
        )
    ctx.status.update(truncated_examples=cut)
    # read before the model loads: a missing or malformed replay file fails fast
    replay_texts = replay.documents(method.replay) if method.replay is not None else []

    # 2. the TRL config, and where a killed run resumes
    sched = common.schedule(ctx, sys.modules[__name__], method, len(train_rows), bool(val_rows))
    args, par = sched.args, sched.par

    # 3. the trainer
    model = load_for_training(plan, r.source, lora, par, method.lora.quantization if lora else None)
    with threads_for(model):
        trainer, distributed = common.trainer(trainer_class(), model, method, r, sched, train_rows, val_rows)
        replayed = ""
        if method.replay is not None:
            trainer.train_collator = replay.ReplayCollator(
                trainer.data_collator,
                replay.encode(r.tokenizer, replay_texts, args.max_length),
                method.replay.ratio,
                method.seed,
            )
            replayed = (
                f", replay {method.replay.ratio:g}x from {method.replay.data} ({len(replay_texts):,} "
                f"documents, {trainer.train_collator.count(args.per_device_train_batch_size)} per micro "
                "batch)"
            )
        what = f"LoRA r={method.lora.adapter_dim} alpha={method.lora.effective_alpha}" if lora else "all weights"
        ctx.log(
            f"{method.kind}: {what} ({trainable_params(trainer.model):,} trainable), {len(train_rows)} train / "
            f"{len(val_rows)} validation examples, ~{sched.steps_per_epoch} steps/epoch x {method.epochs} epochs"
            + (f" (max_steps {method.max_steps})" if method.max_steps else "")
            + f", lr {method.learning_rate:g} -> {method.effective_min_lr:g}, seq {args.max_length}"
            + (", packed" if args.packing else "")
            + replayed
            + f", {world_size()} process(es)"
            + (f" ({distributed}, {trainer.accelerator.state.backend}), {par.describe()}" if par.world > 1 else "")
        )
        ctx.status.update(
            method=method.kind,
            resumed_from=sched.resumed_from,
            output=str(out.relative_to(ctx.bundle)),
            train_examples=len(train_rows),
            validation_examples=len(val_rows),
        )

        # 4. fit, then save the adapter or the model
        fit(ctx, trainer, sched.lifecycle, method, sched.resume, sched.checkpoints, out)
