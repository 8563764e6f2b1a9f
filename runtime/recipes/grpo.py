"""Group relative policy optimisation (method grpo) through TRL's GRPOTrainer.

What runs is what plan.json says (the train stage's resolved Grpo): method.num_generations_per_prompt
completions per prompt, sampled at method.temperature up to method.max_completion_length tokens, scored by the
verifiable rewards method.rewards names (runtime.rewards; the reference is the record's answer, or NeMo's
reference_answer), the KL coefficient method.kl_beta (> 0 keeps a reference: the adapter disabled under LoRA,
else a frozen copy TRL loads), LoRA or all weights (method.finetuning_type). The policy starts from the cold
start SFT stage's model when the plan has one. The layout's micro batch is the number of completions per
device and step; a generation batch is the layout's global batch (micro x data parallel x accumulation)
completions, that is global_batch / num_generations prompts, generated once per optimizer step.

Lifecycle: runtime.lifecycle (status, metrics, early stopping, SIGTERM, resume, NaN guard); every
metrics.jsonl step line also carries reward, reward_std, rewards/<name>/mean, completions/mean_length,
frac_reward_zero_std and kl (eval_ prefixed on epoch lines).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from runtime.checkpoints import (
    output_dir,
    short_name,
)
from runtime.context import RunContext, StageFailed, world_size
from runtime.data import first_text
from runtime.models import chat_turns, render_prompt, threads_for
from runtime.parallel import Parallel, load_for_training, stage_layout
from runtime.recipes import common
from runtime.rewards import trl_reward
from runtime.trainer import (
    as_config,
    fit,
    trainable_params,
    training_args,
)
from schemas.method import Grpo
from schemas.plan import PromptFormat

PROMPT = ("prompt",)
ANSWER = ("answer", "reference_answer")
# TRL's per-step GRPO metrics copied into metrics.jsonl (plus rewards/<name>/mean and std per reward)
BASE_KEYS = (
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "completions/mean_length",
    "completions/clipped_ratio",
    "kl",
    "entropy",
)


# ----------------------------------------------------------------------------- 1. data


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


# ----------------------------------------------------------------------------- 2. the TRL config


def trl_config(
    ctx: RunContext, method: Grpo, checkpoints: Path, n_train: int, has_val: bool, tty: bool, par: Parallel
) -> tuple[Any, int]:
    """TRL's GRPOConfig (the shared schedule of runtime.trainer.training_args plus the method's GRPO values) and
    the steps per epoch: a step trains micro_batch completions per device, so an epoch is n_prompts x group."""
    from trl import GRPOConfig

    layout = stage_layout(ctx)
    group, dp = method.num_generations_per_prompt, par.data_parallel
    generation_batch = layout.micro_batch * dp * layout.grad_accum
    if generation_batch % group:
        raise StageFailed(
            f"a generation batch of {generation_batch} completions (micro_batch {layout.micro_batch} x "
            f"{dp} data parallel x grad_accum {layout.grad_accum}) does not hold whole groups of "
            f"{group} generations per prompt; recompile with a global batch that divides by {group}"
        )
    base, _ = training_args(ctx, method, checkpoints, n_train, has_val, tty, par)
    steps_per_epoch = max(1, math.ceil(n_train * group / generation_batch))
    overrides: dict[str, Any] = {
        "num_generations": group,
        "max_completion_length": method.max_completion_length,
        "temperature": method.temperature,
        "beta": method.kl_beta,
        "steps_per_generation": layout.grad_accum,
        "logging_steps": max(1, min(50, min(steps_per_epoch, method.max_steps or steps_per_epoch) // 10)),
        "gradient_checkpointing": False,
        "log_completions": False,
        "remove_unused_columns": False,  # the rewards read the answer column (SFTConfig's True would drop it)
    }
    if has_val:  # the GRPO loss is ~0 by construction (zero-mean advantages): keep the best mean reward
        overrides.update(metric_for_best_model="eval_reward", greater_is_better=True)
    if has_val and (layout.micro_batch * dp) % group:
        overrides["num_generations_eval"] = math.gcd(layout.micro_batch * dp, group) if group > 1 else group
    if base.eval_strategy == "steps" or str(base.eval_strategy).endswith("STEPS"):
        every = max(1, round(method.val_check_interval * steps_per_epoch))
        overrides.update(eval_steps=every, save_steps=every)
    return as_config(base, GRPOConfig, **overrides), steps_per_epoch


# ----------------------------------------------------------------------------- the recipe: 1 -> 2 -> 3 -> fit


def run(ctx: RunContext, method: Grpo) -> None:
    plan = ctx.plan
    if method.generation_backend != "transformers":
        raise StageFailed(
            f"method.generation_backend {method.generation_backend}: this runtime generates with "
            "transformers; recompile with method.generation_backend=transformers"
        )
    reward_funcs = [trl_reward(name) for name in method.rewards]  # the schema admits registered names only
    lora = method.finetuning_type == "lora"
    out = output_dir(ctx, lora)

    # 1. data: prompts in the stage's prompt format, with the answers the rewards read
    r = common.records(ctx, method, left_padding=True)
    train_rows, skipped = prompt_rows(r.fmt, r.train)
    val_rows, val_skipped = prompt_rows(r.fmt, r.validation)
    if skipped or val_skipped:
        ctx.log(f"skipped {skipped} training and {val_skipped} validation record(s) without a prompt and an answer")
    if not train_rows:
        raise StageFailed(f"no usable prompts with answers in {plan.spec.data.path}; run the validate_data stage")

    # 2. the TRL config, and where a killed run resumes
    keys = BASE_KEYS + tuple(f"rewards/{f.__name__}/{s}" for f in reward_funcs for s in ("mean", "std"))
    sched = common.schedule(ctx, sys.modules[__name__], method, len(train_rows), bool(val_rows), keys)

    # 3. the trainer
    from trl import GRPOTrainer

    model = load_for_training(plan, r.source, lora, sched.par, method.lora.quantization if lora else None)
    with threads_for(model):
        trainer, _ = common.trainer(
            GRPOTrainer, model, method, r, sched, train_rows, val_rows, reward_funcs=reward_funcs
        )
        layout, group = stage_layout(ctx), method.num_generations_per_prompt
        generation_batch = layout.micro_batch * sched.par.data_parallel * layout.grad_accum
        what = f"LoRA r={method.lora.adapter_dim}" if lora else "all weights"
        ctx.log(
            f"grpo: {what} ({trainable_params(trainer.model):,} trainable) from {short_name(ctx, r.source)}, "
            f"rewards {', '.join(method.rewards)}, {group} generations/prompt at temperature "
            f"{method.temperature:g} up to {method.max_completion_length} tokens, generation batch "
            f"{generation_batch} completions ({generation_batch // group} prompts), kl_beta {method.kl_beta:g}, "
            f"{len(train_rows)} train / {len(val_rows)} validation prompts, ~{sched.steps_per_epoch} steps/epoch x "
            f"{method.epochs} epochs"
            + (f" (max_steps {method.max_steps})" if method.max_steps else "")
            + f", lr {method.learning_rate:g}, {world_size()} process(es)"
        )
        ctx.status.update(
            method="grpo",
            finetuning_type=method.finetuning_type,
            rewards=list(method.rewards),
            resumed_from=sched.resumed_from,
            output=str(out.relative_to(ctx.bundle)),
        )

        # 4. fit, then save the adapter or the model
        fit(ctx, trainer, sched.lifecycle, method, sched.resume, sched.checkpoints, out)
