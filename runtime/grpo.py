"""train (method grpo): group relative policy optimisation through TRL's GRPOTrainer.

What runs is what plan.json says (runtime.lifecycle.method_for): method.num_generations_per_prompt
completions per prompt, sampled at method.temperature up to method.max_completion_length tokens,
scored by the verifiable rewards method.rewards names (runtime.rewards; the reference is the record's
answer, or NeMo's reference_answer), the KL coefficient method.kl_beta (> 0 keeps a reference:
the adapter disabled under LoRA, else a frozen copy TRL loads), LoRA or all weights
(method.finetuning_type). The layout's micro batch is the number of completions per device and step;
a generation batch is the layout's global batch (micro x data parallel x accumulation) completions,
that is global_batch / num_generations prompts, generated once per optimizer step.

Lifecycle: runtime.lifecycle's callback (status, metrics, early stopping, SIGTERM, resume, NaN
guard); every metrics.jsonl step line also carries reward, reward_std, rewards/<name>/mean,
completions/mean_length, frac_reward_zero_std and kl (eval_ prefixed on epoch lines).
"""

from __future__ import annotations

import math
from pathlib import Path

from runtime.context import RunContext, StageFailed, rank, world_size
from runtime.data import splits, stage_data
from runtime.lifecycle import (
    stage_layout,
    Parallel,
    fit,
    load_for_training,
    method_for,
    resume_point,
    stage_outputs,
    trainable_params,
    training_args,
    trim_metrics,
)
from runtime.models import chat_turns, check_chat, load_tokenizer, prompt_format, render_prompt, threads_for
from runtime.preference import (
    ExtraMetrics,
    _short,
    as_sft,
    build_trainer,
    convert_args,
    source_for,
    weights_dir,
)
from runtime.rewards import trl_reward
from runtime.train import first_text
from schemas.method import Grpo
from schemas.plan import PromptFormat

PROMPT = ("prompt",)
ANSWER = ("answer", "reference_answer")
BASE_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio",
             "kl", "entropy")


def prompt_rows(fmt: PromptFormat, records: list[dict]) -> tuple[list[dict], int]:
    """GRPOTrainer rows {prompt (in the stage's prompt format: chat turns TRL templates, or plain text), answer};
    and how many were skipped."""
    out = []
    for record in records:
        prompt, answer = first_text(record, PROMPT), record.get("answer", record.get("reference_answer"))
        if prompt is None or answer is None:
            continue
        text = chat_turns(prompt) if fmt.kind == "chat_template" else render_prompt(fmt, prompt)
        out.append({"prompt": text, "answer": str(answer)})
    return out, len(records) - len(out)


def grpo_args(method: Grpo, layout, dp: int, sft_args, n_train: int, has_val: bool):
    """TRL's GRPOConfig (the shared schedule of runtime.lifecycle.training_args plus the method's GRPO values) and
    the steps per epoch: a step trains micro_batch completions per device, so an epoch is n_prompts x group."""
    from trl import GRPOConfig

    group = method.num_generations_per_prompt
    generation_batch = layout.micro_batch * dp * layout.grad_accum
    steps_per_epoch = max(1, math.ceil(n_train * group / generation_batch))
    overrides: dict = dict(
        num_generations=group, max_completion_length=method.max_completion_length, temperature=method.temperature,
        beta=method.kl_beta, steps_per_generation=layout.grad_accum,
        logging_steps=max(1, min(50, min(steps_per_epoch, method.max_steps or steps_per_epoch) // 10)),
        gradient_checkpointing=False, log_completions=False,
        remove_unused_columns=False,  # the rewards read the answer column (SFTConfig's True would drop it)
    )
    if has_val:  # the GRPO loss is ~0 by construction (zero-mean advantages): keep the best mean reward
        overrides.update(metric_for_best_model="eval_reward", greater_is_better=True)
    if has_val and (layout.micro_batch * dp) % group:
        overrides["num_generations_eval"] = math.gcd(layout.micro_batch * dp, group) if group > 1 else group
    if sft_args.eval_strategy == "steps" or str(sft_args.eval_strategy).endswith("STEPS"):
        every = max(1, round(method.val_check_interval * steps_per_epoch))
        overrides.update(eval_steps=every, save_steps=every)
    return convert_args(sft_args, GRPOConfig, **overrides), steps_per_epoch


def run(ctx: RunContext) -> None:
    plan = ctx.plan
    method = method_for(plan, ctx.stage.name)
    if not isinstance(method, Grpo):
        raise StageFailed(f"runtime.grpo trains grpo, not {method.kind}")
    if method.generation_backend != "transformers":
        raise StageFailed(f"method.generation_backend {method.generation_backend}: this runtime generates with "
                          "transformers; recompile with method.generation_backend=transformers")
    reward_funcs = [trl_reward(name) for name in method.rewards]  # the schema admits registered names only
    lora = method.finetuning_type == "lora"
    out = weights_dir(ctx, lora)
    checkpoints, metrics_path, tty = stage_outputs(ctx)

    from trl import GRPOTrainer

    source = source_for(ctx, method)
    tokenizer = load_tokenizer(plan, source)
    tokenizer.padding_side = "left"  # generation continues the prompt

    data, fmt = stage_data(ctx), prompt_format(plan, ctx.stage.name)
    check_chat(fmt, tokenizer, plan.spec.model.name)
    train_records, val_records = splits(data)
    train_rows, skipped = prompt_rows(fmt, train_records)
    val_rows, val_skipped = prompt_rows(fmt, val_records)
    if skipped or val_skipped:
        ctx.log(f"skipped {skipped} training and {val_skipped} validation record(s) without a prompt and an answer")
    if not train_rows:
        raise StageFailed(f"no usable prompts with answers in {plan.spec.data.path}; run the validate_data stage")

    layout = stage_layout(ctx)
    par = Parallel(layout)
    dp = max(1, par.world // par.tp)
    group = method.num_generations_per_prompt
    generation_batch = layout.micro_batch * dp * layout.grad_accum
    if generation_batch % group:
        raise StageFailed(f"a generation batch of {generation_batch} completions (micro_batch {layout.micro_batch} x "
                          f"{dp} data parallel x grad_accum {layout.grad_accum}) does not hold whole groups of "
                          f"{group} generations per prompt; recompile with a global batch that divides by {group}")
    shim = as_sft(method, lora)
    sft_args, _ = training_args(ctx, shim, checkpoints, len(train_rows), bool(val_rows), tty, par)
    args, steps_per_epoch = grpo_args(method, layout, dp, sft_args, len(train_rows), bool(val_rows))

    resume = resume_point(ctx, checkpoints, par)
    keys = BASE_KEYS + tuple(f"rewards/{f.__name__}/{s}" for f in reward_funcs for s in ("mean", "std"))
    metrics = ExtraMetrics(metrics_path, keys, writer=rank() == 0)
    if rank() == 0:
        trim_metrics(metrics, resume)

    model = load_for_training(plan, source, shim, par)
    with threads_for(model):
        trainer, callback = build_trainer(ctx, GRPOTrainer, method, metrics, tty, resume, train_rows, val_rows,
                                          model=model, reward_funcs=reward_funcs, args=args,
                                          processing_class=tokenizer)
        trainable = trainable_params(trainer.model)
        what = f"LoRA r={method.lora.adapter_dim}" if lora else "all weights"
        ctx.log(f"grpo: {what} ({trainable:,} trainable) from {_short(ctx, source)}, rewards "
                f"{', '.join(method.rewards)}, {group} generations/prompt at temperature {method.temperature:g} up to "
                f"{method.max_completion_length} tokens, generation batch {generation_batch} completions "
                f"({generation_batch // group} prompts), kl_beta {method.kl_beta:g}, {len(train_rows)} train / "
                f"{len(val_rows)} validation prompts, ~{steps_per_epoch} steps/epoch x {method.epochs} epochs"
                + (f" (max_steps {method.max_steps})" if method.max_steps else "")
                + f", lr {method.learning_rate:g}, {world_size()} process(es)")
        ctx.status.update(method="grpo", finetuning_type=method.finetuning_type, rewards=list(method.rewards),
                          resumed_from=Path(resume).name if resume else None, output=str(out.relative_to(ctx.bundle)))
        fit(ctx, trainer, callback, method, resume, checkpoints, out, shim)
