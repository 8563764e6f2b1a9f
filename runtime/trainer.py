"""The trainer pieces every training recipe shares: TrainingArguments from the plan, the PEFT adapter, the NaN
guard, the checks on a built trainer, and fit (train, then the stage's endings and the save).

training_args builds TRL's SFTConfig from the stage's resolved method and layout: the schedule, evaluation and
a checkpoint every epoch (or every val_check_interval), precision, sharding, CPU/gloo. A DPO or GRPO recipe
converts it to its own config class (as_config) and adds its method's values.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from runtime.checkpoints import last_checkpoint, load_window, restore_window, save_weights, save_window
from runtime.context import (
    Cancelled,
    RunContext,
    StageFailed,
    disk_full,
    free_bytes,
    human_bytes,
    rank,
    world_size,
)
from runtime.lifecycle import Lifecycle, NonFiniteLoss
from runtime.parallel import Parallel, stage_layout
from runtime.tracking import report_to
from schemas.plan import ResolvedMethod

# adamw_torch_fused: one kernel per parameter, no temporaries. torch's default AdamW on CUDA (foreach) holds an fp32
# temporary the size of every trainable parameter at the step, and on CPU (single tensor) two the size of the largest
# (docs/estimator.md, 2.1).
OPTIMIZERS = {
    "adamw": "adamw_torch_fused",
    "adamw_8bit": "adamw_bnb_8bit",
    "adamw_bf16": "adamw_torch_fused",
    "sgd": "sgd",
}


def checkpointing_args(enabled: bool) -> dict[str, Any]:
    """The training argument that turns activation checkpointing on: ``activation_checkpointing`` since
    transformers 5.23, ``gradient_checkpointing`` before (now its deprecated alias)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": enabled}


# peft and TRL read model.is_gradient_checkpointing, deprecated in transformers 5.x
GRADIENT_CHECKPOINTING_NOTICE = "`is_gradient_checkpointing` is deprecated"


def steps_per_epoch(n_train: int, micro_batch: int, data_parallel: int, grad_accum: int) -> int:
    """Optimizer steps in one pass over n_train examples."""
    return max(1, math.ceil(math.ceil(n_train / (micro_batch * data_parallel)) / grad_accum))


def training_args(
    ctx: RunContext, method: ResolvedMethod, checkpoints: Path, n_train: int, has_val: bool, tty: bool, par: Parallel
) -> tuple[Any, int]:
    """TRL's SFTConfig for the stage (every value from plan.json) and the optimizer steps per epoch."""
    import torch
    from trl import SFTConfig

    layout = stage_layout(ctx)
    micro, accum = layout.micro_batch, layout.grad_accum
    per_epoch = steps_per_epoch(n_train, micro, par.data_parallel, accum)
    cuda = torch.cuda.is_available()
    precision = layout.precision
    interval = method.val_check_interval
    if interval == 1.0:
        strategy: dict[str, Any] = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    else:
        every = max(1, round(interval * per_epoch))
        strategy = {"eval_strategy": "steps", "eval_steps": every, "save_strategy": "steps", "save_steps": every}
    if not has_val:
        strategy["eval_strategy"] = "no"
    # the tracking backend's integration logs the steps into the stage's open run (runtime.tracking)
    reports, run_name = report_to(ctx.plan, ctx.stage)
    fsdp: dict[str, Any] = {}
    if par.accelerate_fsdp:
        fsdp = {
            "fsdp": True,
            "fsdp_config": {
                "version": 2,
                "reshard_after_forward": par.reshard,
                "state_dict_type": "FULL_STATE_DICT",
                "cpu_ram_efficient_loading": False,
                "activation_checkpointing": layout.activation_checkpointing,
            },
        }
    return SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=method.epochs,
        max_steps=method.max_steps or -1,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=accum,
        learning_rate=method.learning_rate,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": method.effective_min_lr},
        warmup_steps=method.warmup_steps,
        weight_decay=method.weight_decay,
        optim=_optimizer(ctx, method.optimizer),
        seed=method.seed,
        data_seed=method.seed,
        bf16=precision.startswith("bf16") and cuda,
        fp16=precision.startswith("fp16") and cuda,
        **checkpointing_args(layout.activation_checkpointing and not fsdp),
        max_length=method.max_seq_length,
        packing=method.sequence_packing,
        **strategy,
        save_total_limit=2,
        # the best checkpoint cannot be loaded back into parameters sharded at load time (DTensor copy_ fails)
        load_best_model_at_end=has_val and not par.sharded_at_load,
        metric_for_best_model="eval_loss" if has_val else None,
        greater_is_better=False if has_val else None,
        logging_strategy="steps",
        logging_steps=max(1, min(50, per_epoch // 5)),
        logging_first_step=True,
        logging_nan_inf_filter=False,
        report_to=reports,
        run_name=run_name,
        disable_tqdm=not tty,
        # without use_cpu, accelerate on a CPU-only machine ignores torchrun (DistributedType.NO): every rank
        # would train its own copy with no gradient all-reduce. use_cpu=True selects MULTI_CPU on gloo.
        use_cpu=not cuda,
        ddp_backend="gloo" if world_size() > 1 and not cuda else None,
        ddp_find_unused_parameters=False if par.world > 1 and not fsdp else None,
        # transformers cannot checkpoint the optimizer of a model sharded at load time (Trainer refuses)
        save_only_model=par.sharded_at_load,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        **fsdp,
    ), per_epoch


def _optimizer(ctx: RunContext, name: str) -> str:
    if name == "adamw_bf16":
        ctx.log("method.optimizer adamw_bf16: the Trainer has no bf16-state AdamW; training with adamw_torch")
    if name == "adamw_8bit":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise StageFailed(
                "method.optimizer adamw_8bit needs bitsandbytes, which is not installed here; "
                "install it or recompile with method.optimizer=adamw"
            ) from None
    return OPTIMIZERS[name]


def as_config(base: Any, config_cls: type, **overrides: Any) -> Any:
    """training_args's SFTConfig (schedule, evaluation/checkpoint strategy, optimizer, precision, use_cpu / gloo,
    FSDP) as another TRL config class: the fields both share, then `overrides`."""
    from transformers import TrainingArguments

    # only the Trainer's own fields: TRL's (loss_type, max_length, packing, ...) mean different things per trainer
    names = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    kwargs = {
        f.name: getattr(base, f.name)
        for f in dataclasses.fields(type(base))
        if f.init and f.name in names and not f.name.startswith("_")
    }
    # fields TrainingArguments.__post_init__ rewrites into derived values; let the new config derive them again
    for derived in (
        "logging_dir",
        "fsdp_config",
        "deepspeed_plugin",
        "accelerator_config",
        "max_length",
        "hub_token",
        "push_to_hub_token",
    ):
        kwargs.pop(derived, None)
    if not base.fsdp:
        kwargs.pop("fsdp", None)
    else:
        kwargs["fsdp"] = True
        kwargs["fsdp_config"] = base.fsdp_config
    kwargs.update(overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return config_cls(**kwargs)


def lora_config(method: ResolvedMethod) -> Any:
    """The PEFT LoraConfig of method.lora."""
    from peft import LoraConfig

    lora = method.lora
    targets = "all-linear" if "all-linear" in lora.target_modules else list(lora.target_modules)
    return LoraConfig(
        r=lora.adapter_dim,
        lora_alpha=lora.effective_alpha,
        lora_dropout=lora.adapter_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )


def peft_config(method: ResolvedMethod) -> Any:
    """The adapter to train, or None when the method trains all weights."""
    return lora_config(method) if method.finetuning_type == "lora" else None


def dataset(rows: list[dict]) -> Any:
    """A datasets.Dataset of TRL rows; None for no rows (no validation split: no evaluation)."""
    import datasets

    return datasets.Dataset.from_list(rows) if rows else None


class DiskFull(Exception):
    """A checkpoint could not be written for lack of space; the message says what is left to resume from."""


def batch_width(inputs: Any) -> int:
    """Tokens a training batch is padded to: the widest of its token-id tensors (DPO: its prompt and completion
    ids side by side, as the trainer concatenates them); 0 for anything else."""
    if not isinstance(inputs, dict):
        return 0
    ids = {k: v for k, v in inputs.items() if k.endswith("input_ids") and getattr(v, "ndim", 0) == 2}
    if "prompt_input_ids" in ids and "completion_input_ids" in ids:
        return int(ids["prompt_input_ids"].shape[-1] + ids["completion_input_ids"].shape[-1])
    return max((int(v.shape[-1]) for v in ids.values()), default=0)


def guarded(trainer_cls: type) -> type:
    """`trainer_cls` with what every training stage needs on top of it: the NaN guard (a non-finite loss stops at the
    step it appears), checkpoints that fail cleanly (a full disk: the partial folder removed, the previous checkpoint
    kept, DiskFull), and an exact resume (the logging window put back: runtime.checkpoints.save_window)."""
    import torch

    class Guarded(trainer_cls):
        _window: dict[str, Any] | None = None
        widest_batch = 0  # tokens of the widest training batch so far (status.json widest_batch_tokens)

        def train(self, resume_from_checkpoint=None, **kwargs):
            if isinstance(resume_from_checkpoint, str):
                self._window = load_window(resume_from_checkpoint)
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

        def training_step(self, *args, **kwargs):
            if self._window is not None:  # the first step after a resume: the Trainer has just zeroed its window
                restore_window(self, self._window)
                self._window = None
            self.widest_batch = max(self.widest_batch, batch_width(args[1] if len(args) > 1 else kwargs.get("inputs")))
            loss = super().training_step(*args, **kwargs)
            if not bool(torch.isfinite(loss).all()):
                raise NonFiniteLoss(self.state.global_step + 1, float(loss.detach().float().mean()))
            return loss

        def _save_checkpoint(self, model, trial):
            folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
            try:
                save_window(self, folder)  # before trainer_state.json, which marks the checkpoint complete
                super()._save_checkpoint(model, trial)
            except Exception as exc:
                full = disk_full(exc, folder)
                free = free_bytes(folder)
                if rank() == 0:
                    shutil.rmtree(folder, ignore_errors=True)  # half a checkpoint: useless, and it holds the space
                if not full:
                    raise
                previous = last_checkpoint(folder.parent)
                kept = (
                    f"the last complete checkpoint, {Path(previous).name}, is intact: free some space and rerun to "
                    "resume from it"
                    if previous
                    else "there is no earlier checkpoint: free some space and rerun (training starts over)"
                )
                raise DiskFull(
                    f"no space left on device while saving {folder.name} to {folder.parent} ({human_bytes(free)} "
                    f"free there; {type(exc).__name__}: {exc}); the partial {folder.name} was removed; {kept}"
                ) from exc

    Guarded.__name__ = f"Guarded{trainer_cls.__name__}"
    return Guarded


def terminal() -> bool:
    """Whether this process shows progress bars (rank 0 on a terminal); library chatter off either way."""
    import datasets
    import transformers

    tty = sys.stdout.isatty() and rank() == 0
    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    if not tty:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    return tty


def prepare(trainer: Any, tty: bool) -> str:
    """Checks and settles a built trainer: no PrinterCallback off a terminal (the Lifecycle prints its own
    lines), and a distributed setup when torchrun started several processes. Returns accelerate's distributed
    type (NO, MULTI_CPU, MULTI_GPU, FSDP, ...)."""
    from transformers import PrinterCallback

    if not tty:
        trainer.remove_callback(PrinterCallback)
    distributed = str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1]
    if world_size() > 1 and distributed == "NO":
        raise StageFailed(
            f"{world_size()} processes but accelerate set up no distributed training: each rank "
            "would train alone; check the torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR)"
        )
    return distributed


def trainable_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fit(
    ctx: RunContext,
    trainer: Any,
    lifecycle: Lifecycle,
    method: ResolvedMethod,
    resume: str | None,
    checkpoints: Path,
    out: Path,
) -> None:
    """trainer.train with the stage's endings: a non-finite loss -> StageFailed, SIGTERM -> Cancelled, else the
    weights saved to `out` and the status completed."""
    if resume:
        ctx.log(f"resumed from {Path(resume).name} ({resume})")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_NOTICE, category=FutureWarning)
            trainer.train(resume_from_checkpoint=resume)
    except NonFiniteLoss as exc:
        raise StageFailed(
            f"{exc}: training diverged (learning rate {method.learning_rate:g}); lower method.learning_rate and rerun"
        ) from None
    except DiskFull as exc:
        raise StageFailed(f"{exc}; {ctx.resume_hint()}") from None
    state = trainer.state
    if lifecycle.cancelled:
        folder = checkpoints.relative_to(ctx.bundle)
        where = f"checkpoint saved at step {state.global_step} of {state.max_steps} in {folder}"
        raise Cancelled(
            f"{ctx.stop_signal}: {where}" + ("" if ctx.requeue else f"; {ctx.resume_hint()}"),
            progressed=state.global_step > lifecycle.start_step,
        )
    lora = method.finetuning_type == "lora"
    save_weights(trainer, out, lora)
    ctx.status.update(
        steps_completed=state.global_step,
        total_steps=state.max_steps,
        percentage_done=100.0
        if not lifecycle.stopped_early
        else round(100.0 * state.global_step / max(1, state.max_steps), 2),
        best_checkpoint=Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
    )
    ctx.log(
        f"saved {'the adapter' if lora else 'the model'} to {out.relative_to(ctx.bundle)} after "
        f"{state.global_step} steps"
        + (f" (best epoch {lifecycle.best_epoch}, val_loss {lifecycle.best_val:.4f})" if lifecycle.best_val else "")
    )
