"""What every recipe does the same way, in the order a recipe calls it: read the stage's records in its prompt
format (`records`), set up the TRL config and the resume point (`schedule`), and build a trainer (`trainer`).
A recipe keeps what is its own: its rows, its TRL config, its reference model and its log line."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.checkpoints import checkpoints_dir, metrics_file, resume_point, source_for, trim_metrics
from runtime.context import RunContext, peak_memory_bytes, rank
from runtime.data import mix, splits, stage_data
from runtime.lifecycle import Lifecycle
from runtime.memory import compare, planned, settle_allocator
from runtime.models import check_chat, load_tokenizer, prompt_format
from runtime.parallel import Parallel, stage_layout
from runtime.status import Metrics
from runtime.trainer import dataset, guarded, peft_config, prepare, terminal
from schemas.plan import PromptFormat, StageData


@dataclass
class Records:
    """The stage's starting weights, tokenizer, prompt format, data and its records (train, validation)."""

    source: str
    tokenizer: Any
    fmt: PromptFormat
    data: StageData
    train: list[dict]
    validation: list[dict]


def records(ctx: RunContext, method: Any, *, left_padding: bool = False) -> Records:
    """Step 1 of a recipe: where the weights start, the tokenizer (left-padded for generation), and the records of
    the planned data files (checked against their hashes) in the stage's prompt format."""
    settle_allocator(on_cpu=ctx.plan.spec.inventory.gpu.name == "cpu")  # before anything large is allocated
    source = source_for(ctx, method)
    tokenizer = load_tokenizer(ctx.plan, source)
    if left_padding:
        tokenizer.padding_side = "left"  # generation continues the prompt
    data, fmt = stage_data(ctx), prompt_format(ctx.plan, ctx.stage.name)
    check_chat(fmt, tokenizer, ctx.plan.spec.model.name)
    if data.mixture is not None:  # the plan's mix, and what each dataset gave it (status.json: mixture_drawn)
        mixed = mix(data.mixture, data.holdout_fraction)
        for line in mixed.notes:
            ctx.log(line)
        ctx.status.update(mixture_drawn=mixed.drawn)
        train, validation = mixed.train, mixed.validation
    else:
        train, validation = splits(data)
    return Records(source, tokenizer, fmt, data, train, validation)


@dataclass
class Schedule:
    """Step 2 of a recipe: the layout, the TRL config, where a killed run resumes, the metrics and the lifecycle."""

    par: Parallel
    args: Any
    steps_per_epoch: int
    checkpoints: Path
    tty: bool
    resume: str | None
    lifecycle: Lifecycle

    @property
    def resumed_from(self) -> str | None:
        return Path(self.resume).name if self.resume else None


def schedule(
    ctx: RunContext, recipe: Any, method: Any, n_train: int, has_val: bool, extra_keys: tuple[str, ...] = ()
) -> Schedule:
    """The recipe's own `trl_config` on the stage's layout, the last complete checkpoint to resume from (the metrics
    file trimmed to it), and the Lifecycle that writes status and metrics."""
    checkpoints, tty = checkpoints_dir(ctx), terminal()
    par = Parallel(stage_layout(ctx))
    args, steps_per_epoch = recipe.trl_config(ctx, method, checkpoints, n_train, has_val, tty, par)
    resume = resume_point(ctx, checkpoints, par)
    metrics = Metrics(metrics_file(ctx), writer=rank() == 0)
    if rank() == 0:
        trim_metrics(metrics, resume)
    resumed_from = Path(resume).name if resume else None
    lifecycle = Lifecycle(ctx, metrics, method.early_stopping, tty, resumed_from, extra_keys=extra_keys)
    return Schedule(par, args, steps_per_epoch, checkpoints, tty, resume, lifecycle)


def reference_copy(model: Any, reference: str) -> Any:
    """A frozen copy of the starting weights when the reference is `copy` (DPO, KTO); else none."""
    if reference != "copy":
        return None
    ref = copy.deepcopy(model)
    ref.requires_grad_(False).eval()
    return ref


def against_plan(ctx: RunContext, lifecycle: Lifecycle) -> Any:
    """A TrainerCallback that puts the measured peak memory and tokens/s beside the stage's estimate in
    status.json (runtime.memory.compare), at the start (the plan's numbers) and at the end of training."""
    from transformers import TrainerCallback

    plan = planned(ctx.stage.estimate)

    class AgainstPlan(TrainerCallback):
        trainer: Any = None  # set once the trainer is built: the widest batch it trained (runtime.trainer.guarded)

        def write(self) -> None:
            measured = {"peak_memory_bytes": peak_memory_bytes(), "tokens_per_second": lifecycle.tokens_per_second}
            widest = getattr(self.trainer, "widest_batch", 0)
            ctx.status.update(**measured, **compare(measured, plan), widest_batch_tokens=widest or None)

        def on_train_begin(self, args, state, control, **kwargs):
            ctx.status.update(**plan)

        def on_evaluate(self, args, state, control, **kwargs):
            self.write()

        def on_train_end(self, args, state, control, **kwargs):
            self.write()
            if rank() == 0 and ctx.status["memory_over_plan"]:
                ctx.log(
                    f"warning: peak memory {ctx.status['peak_memory_bytes'] / 1e9:.2f} GB is "
                    f"{ctx.status['memory_ratio']:.2f}x the plan's {plan['estimated_memory_bytes'] / 1e9:.2f} GB"
                )

    return AgainstPlan()


def trainer(
    trainer_cls: Any,
    model: Any,
    method: Any,
    r: Records,
    s: Schedule,
    train_rows: list[dict],
    val_rows: list[dict],
    **kwargs: Any,
) -> tuple[Any, str]:
    """Step 3 of a recipe: `trainer_cls` with the NaN guard, on the rows, with the method's adapter and the
    lifecycle callback, settled for the launch (prepare); returns it and accelerate's distributed type."""
    measure = against_plan(s.lifecycle.ctx, s.lifecycle)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        built = guarded(trainer_cls)(
            model=model,
            args=s.args,
            processing_class=r.tokenizer,
            train_dataset=dataset(train_rows),
            eval_dataset=dataset(val_rows),
            peft_config=peft_config(method),
            callbacks=[s.lifecycle.callback(), measure],
            **kwargs,
        )
    measure.trainer = built
    return built, prepare(built, s.tty)
