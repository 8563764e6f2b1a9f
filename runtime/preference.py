"""train (method dpo): direct preference optimisation through TRL's DPOTrainer.

What runs is what plan.json says (runtime.lifecycle.method_for: the spec's Dpo, else the config's
recommended values over Dpo's defaults):

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
rendered through the config's prompt template exactly as SFT renders prompt + chosen.

Lifecycle: runtime.lifecycle's callback (status.json, metrics.jsonl, early stopping on the DPO
val loss, SIGTERM, resume, NaN guard); every metrics.jsonl line also carries TRL's preference
metrics: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies (eval_ prefixed on
epoch lines).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path
from types import SimpleNamespace

from runtime.context import RunContext, StageFailed, rank, world_size
from runtime.data import splits, stage_data
from runtime.lifecycle import (
    stage_layout,
    Parallel,
    fit,
    guarded,
    lifecycle_callback,
    load_for_training,
    lora_config,
    method_for,
    prepare,
    resume_point,
    stage_outputs,
    trainable_params,
    training_args,
    trim_metrics,
)
from runtime.models import check_chat, load_tokenizer, model_dir, prompt_format, threads_for
from runtime.status import Metrics
from runtime.train import first_text, prompt_completion
from schemas.method import Dpo
from schemas.plan import PromptFormat

PROMPT = ("prompt",)
CHOSEN = ("chosen", "chosen_response")
REJECTED = ("rejected", "rejected_response")
# TRL's per-step preference metrics copied into metrics.jsonl
PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


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


def source_for(ctx: RunContext, method) -> str:
    """The starting weights: the train_sft stage's output, else method.sft_base, else the plan's model."""
    base = ctx.stage.inputs.get("base")
    if base:
        path = ctx.path(base)
        if not path.is_dir():
            raise StageFailed(f"the SFT base {base} does not exist: run the train_sft stage first")
        return str(path)
    if getattr(method, "sft_base", None):
        local = Path(method.sft_base).expanduser()
        return str(local) if local.is_dir() else method.sft_base
    return model_dir(ctx.plan)


def weights_dir(ctx: RunContext, lora: bool) -> Path:
    plan = ctx.plan
    relative = (plan.artifacts.adapter_dir if lora else plan.artifacts.model_dir) or ctx.stage.outputs.get("weights")
    if not relative:
        raise StageFailed(f"plan {plan.id} names no output directory for the weights; recompile it")
    return ctx.path(relative)


def dpo_args(method: Dpo, sft_args, steps_per_epoch: int):
    """TRL's DPOConfig: the shared schedule of runtime.lifecycle.training_args plus the method's DPO values."""
    from trl import DPOConfig

    losses, weights = ["sigmoid"], [method.preference_loss_weight]
    if method.sft_loss_weight > 0:
        losses.append("sft")
        weights.append(method.sft_loss_weight)
    return convert_args(sft_args, DPOConfig, beta=method.beta, loss_type=losses, loss_weights=weights,
                        max_length=sft_args.max_length,
                        precompute_ref_log_probs=method.effective_reference == "precomputed",
                        gradient_checkpointing=False,
                        logging_steps=max(1, min(50, min(steps_per_epoch, method.max_steps or steps_per_epoch) // 5)))


def as_sft(method, lora: bool) -> SimpleNamespace:
    """`method` seen as runtime.lifecycle's helpers expect it: kind 'lora' (adapter, compute dtype) or 'sft'."""
    fields = {f: getattr(method, f) for f in type(method).model_fields}
    fields.update(kind="lora" if lora else "sft", effective_min_lr=method.effective_min_lr)
    return SimpleNamespace(**fields)


def convert_args(sft_args, config_cls, **overrides):
    """runtime.lifecycle.training_args's SFTConfig (schedule, evaluation/checkpoint strategy, optimizer, precision,
    use_cpu / gloo, FSDP) as another TRL config class: the fields both share, then `overrides`."""
    from transformers import TrainingArguments

    # only the Trainer's own fields: TRL's (loss_type, max_length, packing, ...) mean different things per trainer
    names = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    kwargs = {f.name: getattr(sft_args, f.name) for f in dataclasses.fields(type(sft_args))
              if f.init and f.name in names and not f.name.startswith("_")}
    # fields TrainingArguments.__post_init__ rewrites into derived values; let the new config derive them again
    for derived in ("logging_dir", "fsdp_config", "deepspeed_plugin", "accelerator_config", "max_length",
                    "hub_token", "push_to_hub_token"):
        kwargs.pop(derived, None)
    if not sft_args.fsdp:
        kwargs.pop("fsdp", None)
    else:
        kwargs["fsdp"] = True
        kwargs["fsdp_config"] = sft_args.fsdp_config
    kwargs.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return config_cls(**kwargs)


class ExtraMetrics(Metrics):
    """metrics.jsonl whose step / epoch lines also carry the trainer's own metrics of that log call."""

    def __init__(self, path: Path, keys: tuple[str, ...], writer: bool = True):
        super().__init__(path, writer)
        self.keys = keys
        self.step: dict = {}
        self.epoch: dict = {}

    def take(self, logs: dict) -> None:
        if "loss" in logs:
            self.step = {k: logs[k] for k in self.keys if k in logs}
        if "eval_loss" in logs:
            self.epoch = {f"eval_{k}": logs[f"eval_{k}"] for k in self.keys if f"eval_{k}" in logs}

    def write(self, **record) -> None:
        extra = self.step if record.get("kind") == "step" else self.epoch if record.get("kind") == "epoch" else {}
        super().write(**{**extra, **record})


def metrics_feeder(metrics: ExtraMetrics):
    """A callback that runs before Lifecycle.on_log and hands it the trainer's extra metrics."""
    from transformers import TrainerCallback

    class Feed(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            metrics.take(logs or {})
            return control

    return Feed()


def build_trainer(ctx: RunContext, trainer_cls, method, metrics: ExtraMetrics, tty: bool, resume: str | None,
                  train_rows: list[dict], val_rows: list[dict], **kwargs):
    """A DPO or GRPO trainer on the shared lifecycle: the NaN guard, LoRA when the method says so, the metrics
    feeder and the Lifecycle callback, checked by lifecycle.prepare. Returns (trainer, callback)."""
    import datasets

    callback = lifecycle_callback(ctx, metrics, method, tty, Path(resume).name if resume else None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        trainer = guarded(trainer_cls)(
            train_dataset=datasets.Dataset.from_list(train_rows),
            eval_dataset=datasets.Dataset.from_list(val_rows) if val_rows else None,
            peft_config=lora_config(method) if method.finetuning_type == "lora" else None,
            callbacks=[metrics_feeder(metrics), callback], **kwargs)
    prepare(trainer, tty)
    return trainer, callback


def run(ctx: RunContext) -> None:
    plan = ctx.plan
    method = method_for(plan, ctx.stage.name)
    if not isinstance(method, Dpo):
        raise StageFailed(f"runtime.preference trains dpo, not {method.kind}")
    if plan.spec.data.format != "preference":
        raise StageFailed(f"DPO needs preference data (prompt, chosen, rejected); {plan.spec.data.path} is "
                          f"{plan.spec.data.format}")
    lora = method.finetuning_type == "lora"
    reference = method.effective_reference
    out = weights_dir(ctx, lora)
    checkpoints, metrics_path, tty = stage_outputs(ctx)

    from trl import DPOTrainer

    source = source_for(ctx, method)
    tokenizer = load_tokenizer(plan, source)
    data, fmt = stage_data(ctx), prompt_format(plan, ctx.stage.name)
    check_chat(fmt, tokenizer, plan.spec.model.name)

    train_records, val_records = splits(data)
    train_rows, skipped = preference_rows(fmt, train_records)
    val_rows, val_skipped = preference_rows(fmt, val_records)
    if skipped or val_skipped:
        ctx.log(f"skipped {skipped} training and {val_skipped} validation record(s) without prompt, chosen and "
                "rejected (validate_data lists them)")
    if not train_rows:
        raise StageFailed(f"no usable preference pairs in {plan.spec.data.path}; run the validate_data stage")

    par = Parallel(stage_layout(ctx))
    shim = as_sft(method, lora)
    sft_args, steps_per_epoch = training_args(ctx, shim, checkpoints, len(train_rows), bool(val_rows), tty, par)
    args = dpo_args(method, sft_args, steps_per_epoch)

    resume = resume_point(ctx, checkpoints, par)
    metrics = ExtraMetrics(metrics_path, PREFERENCE_KEYS, writer=rank() == 0)
    if rank() == 0:
        trim_metrics(metrics, resume)

    model = load_for_training(plan, source, shim, par)
    ref_model = None
    if reference == "copy":
        ref_model = copy.deepcopy(model)
        ref_model.requires_grad_(False).eval()
    elif reference == "adapters_disabled" and not lora:
        raise StageFailed("reference adapters_disabled needs finetuning_type lora")

    with threads_for(model):
        trainer, callback = build_trainer(ctx, DPOTrainer, method, metrics, tty, resume, train_rows, val_rows,
                                          model=model, ref_model=ref_model, args=args, processing_class=tokenizer)
        trainable = trainable_params(trainer.model)
        what = f"LoRA r={method.lora.adapter_dim}" if lora else "all weights"
        ctx.log(f"dpo: {what} ({trainable:,} trainable) from {_short(ctx, source)}, reference {reference}, "
                f"beta {method.beta:g}, loss {'+'.join(f'{w:g}*{t}' for t, w in zip(args.loss_type, args.loss_weights))}, "
                f"{len(train_rows)} train / {len(val_rows)} validation pairs, ~{steps_per_epoch} steps/epoch x "
                f"{method.epochs} epochs" + (f" (max_steps {method.max_steps})" if method.max_steps else "")
                + f", lr {method.learning_rate:g}, seq {args.max_length}, {world_size()} process(es)")
        ctx.status.update(method="dpo", finetuning_type=method.finetuning_type, reference=reference,
                          resumed_from=Path(resume).name if resume else None, output=str(out.relative_to(ctx.bundle)))
        fit(ctx, trainer, callback, method, resume, checkpoints, out, shim)


def _short(ctx: RunContext, source: str) -> str:
    try:
        return str(Path(source).relative_to(ctx.bundle))
    except ValueError:
        return Path(source).name if Path(source).is_dir() else source
