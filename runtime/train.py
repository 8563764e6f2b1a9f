"""train / train_sft: supervised fine-tuning through TRL's SFTTrainer, LoRA (peft) or all weights.

What runs is what plan.json says: the stage's resolved method (every hyperparameter), its own
layout (micro batch, accumulation, precision, sharding, tensor parallel), its data files (checked
against their planned sha256) and prompt format, and the artifact paths.

Data: records become TRL prompt/completion rows in the stage's prompt format, so the loss covers the
completion only: the tokenizer's chat template (conversational rows, TRL applies it) or the
config's plain template (runtime.models.render_example); preference records train on prompt +
chosen; prompt/answer on prompt + "Answer: <answer>"; documents on the whole text. Records longer
than max_seq_length are counted and reported before training (status.json truncated_examples).

Lifecycle (runtime.lifecycle, shared with DPO and GRPO): status.json and metrics.jsonl (rank 0),
evaluation and a checkpoint every epoch, early stopping on val_loss, resume from the last checkpoint
after a kill, SIGTERM -> checkpoint + Cancelled, a non-finite loss -> StageFailed naming the step.
method.replay mixes general text into the training batches (runtime.replay).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from runtime import replay as replay_mod
from runtime.context import RunContext, StageFailed, rank, world_size
from runtime.data import messages_text, splits, stage_data, truncated_rows
from runtime.lifecycle import (
    Parallel,
    fit,
    guarded,
    lifecycle_callback,
    load_for_training,
    lora_config,
    method_for,
    output_dir,
    prepare,
    resume_point,
    stage_layout,
    stage_outputs,
    trainable_params,
    training_args,
    trim_metrics,
)
from runtime.models import (
    chat_turns,
    check_chat,
    load_tokenizer,
    model_dir,
    prompt_format,
    render_example,
    threads_for,
)
from runtime.status import Metrics
from schemas.method import Lora, Sft
from schemas.plan import PromptFormat, StageData
from schemas.records import FIELDS

ANSWER_PREFIX = "Answer:"  # where runtime.rewards and the pass_at_1 metric read a final answer
# The text an SFT stage trains on, per data format: (prompt fields, completion fields); NeMo alternatives included.
# A preference record trains on its chosen answer (the SFT base of DPO), a prompt/answer record on
# "Answer: <answer>" (a GRPO cold start).
SUPERVISED = {
    "prompt_completion": (FIELDS["prompt_completion"][0], FIELDS["prompt_completion"][1]),
    "preference": (FIELDS["preference"][0], FIELDS["preference"][1]),
    "prompt_answer": (FIELDS["prompt_answer"][0], FIELDS["prompt_answer"][1]),
}


# ----------------------------------------------------------------------------- data


def first_text(record: dict, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def prompt_completion(fmt: PromptFormat, prompt: str | list[dict], completion: str) -> dict:
    """One TRL prompt/completion row. Chat: conversational, so TRL applies the tokenizer's chat template (as
    evaluation does, runtime.models.render_prompt); plain: the config's template, split at the completion."""
    if fmt.kind == "chat_template":
        return {"prompt": chat_turns(prompt), "completion": [{"role": "assistant", "content": completion}]}
    assert isinstance(prompt, str)
    head, tail = render_example(fmt, prompt, completion)
    # Spaces that end the prompt part move to the completion: a byte-level BPE merges " word" into one
    # token, so "prompt " would not tokenize as a prefix of "prompt completion" and TRL would cut the
    # completion mask at the wrong token.
    stripped = head.rstrip(" ")
    return {"prompt": stripped, "completion": head[len(stripped):] + tail}


def _messages(fmt: PromptFormat, messages) -> dict | None:
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
               for m in messages):
        return None
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        return None
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    if fmt.kind == "chat_template":
        return prompt_completion(fmt, turns[:-1], turns[-1]["content"])
    return prompt_completion(fmt, messages_text(turns[:-1]), turns[-1]["content"])


def rows(data: StageData, fmt: PromptFormat, records: list[dict]) -> tuple[list[dict], int]:
    """TRL dataset rows for the stage's data format and prompt format, and how many records were skipped."""
    out: list[dict] = []
    for record in records:
        row: dict | None = None
        if data.format == "messages":
            row = _messages(fmt, record.get("messages"))
        elif data.format == "documents":
            text = first_text(record, ("text",))
            row = {"text": text} if text else None
        else:
            prompt_names, completion_names = SUPERVISED[data.format]
            prompt, completion = first_text(record, prompt_names), first_text(record, completion_names)
            if data.format == "prompt_answer" and completion:  # a GRPO cold start: the answer the rewards read
                completion = f"{ANSWER_PREFIX} {completion.strip()}"
            row = prompt_completion(fmt, prompt, completion) if prompt and completion else None
        if row is not None:
            out.append(row)
    return out, len(records) - len(out)


# ----------------------------------------------------------------------------- the callback


# ----------------------------------------------------------------------------- the run


def _trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer

    class _Trainer(guarded(SFTTrainer)):
        """SFTTrainer with the NaN guard that mixes replay text into the training batches (only those:
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
            if model.training:  # what TRL reports as num_tokens (the Lifecycle callback's tokens/s)
                if "attention_mask" in inputs:
                    self.tokens_seen += int(inputs["attention_mask"].sum())
                elif "position_ids" in inputs:
                    self.tokens_seen += int(inputs["position_ids"].size(1))
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

        def log(self, logs, start_time=None):
            if self.args.use_cpu and self.model.training and "loss" in logs:
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


def run(ctx: RunContext) -> None:
    plan = ctx.plan
    method = method_for(plan, ctx.stage.name)
    if method.kind in ("dpo", "grpo"):  # preference / RL trainers, on this module's lifecycle helpers
        import importlib

        module = importlib.import_module("runtime.preference" if method.kind == "dpo" else "runtime.grpo")
        return module.run(ctx)
    out = output_dir(ctx, method)
    checkpoints, metrics_path, tty = stage_outputs(ctx)

    base = ctx.stage.inputs.get("base")
    source = str(ctx.path(base)) if base else model_dir(plan)
    tokenizer = load_tokenizer(plan, source)
    data, fmt = stage_data(ctx), prompt_format(plan, ctx.stage.name)
    check_chat(fmt, tokenizer, plan.spec.model.name)

    train_records, val_records = splits(data)
    train_rows, skipped = rows(data, fmt, train_records)
    val_rows, val_skipped = rows(data, fmt, val_records)
    if skipped or val_skipped:
        ctx.log(f"skipped {skipped} training and {val_skipped} validation record(s) without the "
                f"{data.format} fields (validate_data lists them)")
    if not train_rows:
        raise StageFailed(f"no usable training records in {data.root} (format {data.format}); "
                          "run the validate_data stage for the file:line of each problem")
    cut = truncated_rows(tokenizer, train_rows, method.max_seq_length)
    if cut:
        ctx.log(f"warning: {cut} of {len(train_rows)} training examples are longer than max_seq_length "
                f"{method.max_seq_length} and are cut (the plan's data-truncated finding says how to avoid it)")
    ctx.status.update(truncated_examples=cut)

    # read before the model loads: a missing or malformed replay file fails fast
    replay_texts = replay_mod.documents(method.replay) if method.replay is not None else []
    par = Parallel(stage_layout(ctx))
    args, steps_per_epoch = training_args(ctx, method, checkpoints, len(train_rows), bool(val_rows), tty, par)
    resume = resume_point(ctx, checkpoints, par)
    metrics = Metrics(metrics_path, writer=rank() == 0)
    if rank() == 0:
        trim_metrics(metrics, resume)

    model = load_for_training(plan, source, method, par)
    with threads_for(model):
        _train(ctx, method, model, tokenizer, args, par, train_rows, val_rows, replay_texts, steps_per_epoch, resume,
               metrics, checkpoints, out, tty)


def _train(ctx: RunContext, method: Lora | Sft, model, tokenizer, args, par: Parallel, train_rows: list[dict],
           val_rows: list[dict], replay_texts: list[str], steps_per_epoch: int, resume: str | None, metrics: Metrics,
           checkpoints: Path, out: Path, tty: bool) -> None:
    import datasets

    peft_config = lora_config(method) if method.kind == "lora" else None
    resumed_from = Path(resume).name if resume else None
    callback = lifecycle_callback(ctx, metrics, method, tty, resumed_from)
    with warnings.catch_warnings():
        # peft's PeftModel reads model.is_gradient_checkpointing, deprecated in transformers 5.x
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        trainer = _trainer_class()(
            model=model, args=args, train_dataset=datasets.Dataset.from_list(train_rows),
            eval_dataset=datasets.Dataset.from_list(val_rows) if val_rows else None,
            processing_class=tokenizer, peft_config=peft_config, callbacks=[callback])
    distributed = prepare(trainer, tty)
    replayed = ""
    if method.replay is not None:
        trainer.train_collator = replay_mod.ReplayCollator(
            trainer.data_collator, replay_mod.encode(tokenizer, replay_texts, args.max_length), method.replay.ratio,
            method.seed)
        replayed = (f", replay {method.replay.ratio:g}x from {method.replay.data} ({len(replay_texts):,} documents, "
                    f"{trainer.train_collator.count(args.per_device_train_batch_size)} per micro batch)")

    what = (f"LoRA r={method.lora.adapter_dim} alpha={method.lora.effective_alpha}" if method.kind == "lora"
            else "all weights")
    trainable = trainable_params(trainer.model)
    ctx.log(f"{method.kind}: {what} ({trainable:,} trainable), {len(train_rows)} train / {len(val_rows)} validation "
            f"examples, ~{steps_per_epoch} steps/epoch x {method.epochs} epochs"
            + (f" (max_steps {method.max_steps})" if method.max_steps else "")
            + f", lr {method.learning_rate:g} -> {method.effective_min_lr:g}, seq {args.max_length}"
            + (", packed" if args.packing else "") + replayed + f", {world_size()} process(es)"
            + (f" ({distributed}, {trainer.accelerator.state.backend}), {par.describe()}" if par.world > 1 else ""))
    ctx.status.update(method=method.kind, resumed_from=resumed_from, output=str(out.relative_to(ctx.bundle)))
    fit(ctx, trainer, callback, method, resume, checkpoints, out, method)


