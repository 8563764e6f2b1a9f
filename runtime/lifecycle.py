"""The training lifecycle the train, train_sft, DPO and GRPO stages share.

What to train (method_for: the stage's resolved method in plan.json), where the weights go, the
TrainingArguments built from the plan (training_args: schedule, evaluation and a checkpoint every
epoch, early stopping, precision, sharding), the model load for the layout (Parallel,
load_for_training), the Lifecycle callback (status.json and metrics.jsonl on rank 0, a progress
bar on a terminal, plain lines otherwise, SIGTERM -> checkpoint + Cancelled, early stopping, the
measured peak memory), resume from the last complete checkpoint (last_checkpoint, trim_metrics) and
the atomic save of the adapter or the model (save_weights).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

from runtime.context import (
    Cancelled,
    RunContext,
    StageFailed,
    peak_memory_bytes,
    rank,
    world_size,
)
from runtime.status import Metrics
from schemas.method import Lora, Sft
from schemas.plan import Layout, Plan

OPTIMIZERS = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "adamw_bf16": "adamw_torch", "sgd": "sgd"}

class NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        super().__init__(f"loss is {value} at step {step}")
        self.step, self.value = step, value

def method_for(plan: Plan, stage: str):
    """The hyperparameters this stage trains with: exactly the stage's resolved method in plan.json."""
    method = plan.stage(stage).method
    if method is None:
        raise StageFailed(f"plan {plan.id}: stage {stage!r} has no training method (chose {plan.decision.method!r}); "
                          "re-plan if the plan was edited by hand")
    return method

def stage_layout(ctx: RunContext) -> Layout:
    """The stage's own layout (each training stage has one); the plan's for a stage without."""
    return ctx.stage.layout or ctx.plan.layout


def output_dir(ctx: RunContext, method: Lora | Sft) -> Path:
    plan = ctx.plan
    if ctx.stage.name == "train_sft":
        return ctx.path(ctx.stage.outputs["model"])
    relative = plan.artifacts.adapter_dir if method.kind == "lora" else plan.artifacts.model_dir
    relative = relative or ctx.stage.outputs.get("weights")
    if not relative:
        raise StageFailed(f"plan {plan.id} names no output directory for the {method.kind} weights; recompile it")
    return ctx.path(relative)

def _epoch_number(epoch: float) -> int:
    """The 1-based epoch a fractional trainer epoch falls in: 0.6 -> 1, 1.0 -> 1, 1.2 -> 2."""
    return max(1, math.ceil(epoch - 1e-6))

def lifecycle_callback(ctx: RunContext, metrics: Metrics, method: Lora | Sft, tty: bool, resumed_from: str | None):
    import torch
    from transformers import TrainerCallback

    class Lifecycle(TrainerCallback):
        """Status, metrics, early stopping, SIGTERM; rank 0 writes."""

        def __init__(self):
            self.cancelled = False
            self.stopped_early = False
            self.best_epoch: int | None = None
            self.best_val: float | None = None
            self.last_val: float | None = None
            self.last_train: float | None = None
            self.epoch_losses: list[tuple[float, int]] = []  # (mean loss of a logging interval, its steps)
            self._last_logged_step = 0
            self._last_tokens: float | None = None
            self._last_time = time.monotonic()
            self._last_status = 0.0
            self.tokens_per_second: float | None = None

        # -- status
        def _status(self, state, force: bool = False, **extra):
            now = time.monotonic()
            if not force and now - self._last_status < 1.0:
                return
            self._last_status = now
            total = state.max_steps or 0
            ctx.status.update(
                steps_completed=state.global_step, total_steps=total,
                epochs_completed=int(math.floor((state.epoch or 0.0) + 1e-6)),
                percentage_done=round(100.0 * state.global_step / total, 2) if total else 0.0,
                best_epoch=self.best_epoch, train_loss=self.last_train, val_loss=self.last_val,
                tokens_per_second=self.tokens_per_second,
                elapsed_seconds=round(now - ctx.started, 3), peak_memory_bytes=peak_memory_bytes(), **extra)

        def on_train_begin(self, args, state, control, **kwargs):
            self._last_logged_step = state.global_step
            self._history(state)
            self._status(state, force=True, resumed_from=resumed_from, stopped_early=False)

        def _history(self, state):
            """Best val_loss so far from the (possibly resumed) log history."""
            evals = [(h["epoch"], h["eval_loss"]) for h in state.log_history if "eval_loss" in h]
            if evals:
                epoch, loss = min(evals, key=lambda e: e[1])
                self.best_val, self.best_epoch = loss, _epoch_number(epoch)
                self.last_val = evals[-1][1]
            losses = [h["loss"] for h in state.log_history if "loss" in h]
            if losses:
                self.last_train = losses[-1]

        # -- steps
        def on_step_end(self, args, state, control, **kwargs):
            stop = ctx.stop_requested
            if world_size() > 1:  # every rank stops at the same step, or DDP would hang
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    flag = torch.tensor([1 if stop else 0], device=args.device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    stop = bool(flag.item())
            if stop and not self.cancelled:
                self.cancelled = True
                control.should_save = True
                control.should_training_stop = True
                ctx.log(f"SIGTERM: saving a checkpoint at step {state.global_step} and stopping")
            self._status(state)
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if self.cancelled:  # the step-end checkpoint is the one to keep
                control.should_evaluate = False
                control.should_save = False
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            now = time.monotonic()
            if "eval_runtime" in logs:  # tokens/s counts training time, not evaluation
                self._last_time += float(logs["eval_runtime"])
            if "num_tokens" in logs and "loss" in logs:
                if self._last_tokens is not None and now > self._last_time:
                    rate = (logs["num_tokens"] - self._last_tokens) / (now - self._last_time)
                    self.tokens_per_second = round(rate, 1)
                self._last_tokens, self._last_time = logs["num_tokens"], now
            if "loss" in logs:
                loss = float(logs["loss"])
                if not math.isfinite(loss):
                    raise NonFiniteLoss(state.global_step, loss)
                self.last_train = loss
                self.epoch_losses.append((loss, max(1, state.global_step - self._last_logged_step)))
                self._last_logged_step = state.global_step
                metrics.write(kind="step", step=state.global_step, epoch=round(state.epoch or 0.0, 4),
                              train_loss=loss, val_loss=None, learning_rate=logs.get("learning_rate"),
                              tokens_per_second=self.tokens_per_second)
                if not tty:
                    ctx.log(f"step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.2f} "
                            f"loss {loss:.4f} lr {logs.get('learning_rate', 0):.3g}"
                            + (f" {self.tokens_per_second:.0f} tok/s" if self.tokens_per_second else ""))
            if "eval_loss" in logs:
                val = float(logs["eval_loss"])
                self.last_val = val
                steps = sum(n for _, n in self.epoch_losses)
                train = sum(v * n for v, n in self.epoch_losses) / steps if steps else self.last_train
                self.epoch_losses = []
                epoch = _epoch_number(state.epoch or 0.0)
                improved = self.best_val is None or val < self.best_val - method.early_stopping.min_delta
                if self.best_val is None or val < self.best_val:
                    self.best_val, self.best_epoch = val, epoch
                metrics.write(kind="epoch", step=state.global_step, epoch=round(state.epoch or 0.0, 4),
                              train_loss=train, val_loss=val, learning_rate=self._lr(state),
                              tokens_per_second=self.tokens_per_second)
                ctx.log(f"epoch {state.epoch or 0:.2f}: train_loss {train if train is not None else float('nan'):.4f} "
                        f"val_loss {val:.4f}{'' if improved else ' (no improvement)'}")
                self._status(state, force=True)
            return control

        @staticmethod
        def _lr(state):
            for h in reversed(state.log_history):
                if "learning_rate" in h:
                    return h["learning_rate"]
            return None

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            """Early stopping: val_loss not better than the best by min_delta for `patience` evaluations."""
            evals = [h["eval_loss"] for h in state.log_history if "eval_loss" in h]
            patience, delta = method.early_stopping.patience, method.early_stopping.min_delta
            best, waited = math.inf, 0
            for loss in evals:
                if loss < best - delta:
                    best, waited = loss, 0
                else:
                    waited += 1
            if waited >= patience and not control.should_training_stop:
                control.should_training_stop = True
                self.stopped_early = True
                ctx.log(f"early stopping: val_loss has not improved by {delta} for {patience} evaluation(s)")
            return control

        def on_train_end(self, args, state, control, **kwargs):
            self._status(state, force=True, stopped_early=self.stopped_early)

    return Lifecycle()

def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint (trainer_state.json is written last); rank 0 removes torn ones."""
    if not folder.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for path in folder.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if not path.is_dir() or not suffix.isdigit():
            continue
        if (path / "trainer_state.json").is_file():
            found.append((int(suffix), path))
        elif rank() == 0:  # killed while saving: nothing in it can be trusted
            shutil.rmtree(path, ignore_errors=True)
    return str(max(found)[1]) if found else None

class Parallel:
    """How this launch spreads the model: DDP (or one process), accelerate FSDP2, or sharded at load time."""

    def __init__(self, layout: Layout):
        import torch

        world = world_size()
        self.world, self.tp, self.fsdp = world, 1, 1
        self.cuda = torch.cuda.is_available()
        if world == 1:
            return
        tp = layout.tensor_parallel
        if world % tp:
            raise StageFailed(f"layout.tensor_parallel {tp} does not divide the {world} processes; launch with "
                              f"torchrun --nproc-per-node a multiple of {tp}")
        if tp > 1 and not self.cuda:
            raise StageFailed(
                f"layout.tensor_parallel {tp} on CPU: transformers shards the model (DistributedConfig(tp_size={tp}) "
                "loads, and forward/backward match the unsharded model on gloo), but the Trainer then passes "
                f"accelerate a ParallelismConfig(tp_size={tp}), which accelerate 1.15 accepts only for FSDP2, "
                "GPU-like or DeepSpeed backends, not MULTI_CPU (\"ParallelismConfig is only compatible "
                "DistributedType.FSDP (version 2) or DistributedType.Multi{Device} or DistributedType.DEEPSPEED, "
                "but got DistributedType.MULTI_CPU\"); on CPU recompile with layout.tensor_parallel=1 (DDP, or "
                "layout.sharding=fsdp for FSDP2)")
        self.tp = tp
        if layout.sharding in ("fsdp", "zero1", "zero2"):
            self.fsdp = world // tp
        self.reshard = layout.sharding == "fsdp"  # zero1/2: keep parameters gathered (SHARD_GRAD_OP-like)

    @property
    def accelerate_fsdp(self) -> bool:
        """FSDP2 through accelerate (TrainingArguments.fsdp): GPUs only. accelerate 1.15 turns FSDP on only for
        GPU-like backends; on MULTI_CPU (gloo) it drops the plugin and silently runs DDP."""
        return self.fsdp > 1 and self.tp == 1 and self.cuda

    @property
    def sharded_at_load(self) -> bool:
        """transformers' DistributedConfig: tensor parallel, and FSDP2 on CPU."""
        return self.tp > 1 or (self.fsdp > 1 and not self.accelerate_fsdp)

    def describe(self) -> str:
        parts = []
        if self.tp > 1:
            parts.append(f"TP {self.tp}")
        if self.fsdp > 1:
            parts.append(f"FSDP2 over {self.fsdp} ({'accelerate' if self.accelerate_fsdp else 'DistributedConfig'})")
        elif self.world > 1 and self.tp < self.world:
            parts.append(f"DDP x{self.world // self.tp}")
        return ", ".join(parts)

def load_for_training(plan: Plan, source: str, method: Lora | Sft, par: Parallel):
    import torch
    from transformers import AutoModelForCausalLM

    from runtime.models import torch_dtype

    # LoRA keeps a frozen base in the compute dtype; all weights keep fp32 master weights (autocast does bf16).
    dtype = torch_dtype(plan) if method.kind == "lora" else torch.float32
    kwargs: dict = {"dtype": dtype}
    if par.sharded_at_load:
        # transformers' own distributed loading: the model's tp plan over the "tp" mesh dimension and FSDP2
        # (fully_shard) over "fsdp", applied as the weights load; the rest of the processes replicate.
        from transformers.distributed import DistributedConfig

        replicas = par.world // (par.tp * par.fsdp)
        kwargs["distributed_config"] = DistributedConfig(tp_size=par.tp, fsdp_size=par.fsdp, dp_replicate_size=replicas)
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise StageFailed(f"cannot load {plan.spec.model.name} from {source!r}: {exc}") from None

def training_args(ctx: RunContext, method: Lora | Sft, checkpoints: Path, n_train: int, has_val: bool, tty: bool,
            par: Parallel):
    import torch
    from trl import SFTConfig

    layout = stage_layout(ctx)
    micro, accum = layout.micro_batch, layout.grad_accum
    dp = max(1, par.world // par.tp)
    steps_per_epoch = max(1, math.ceil(math.ceil(n_train / (micro * dp)) / accum))
    cuda = torch.cuda.is_available()
    precision = layout.precision
    interval = method.val_check_interval
    if interval == 1.0:
        strategy: dict = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    else:
        every = max(1, round(interval * steps_per_epoch))
        strategy = {"eval_strategy": "steps", "eval_steps": every, "save_strategy": "steps", "save_steps": every}
    if not has_val:
        strategy["eval_strategy"] = "no"
    optim = OPTIMIZERS[method.optimizer]
    if method.optimizer == "adamw_bf16":
        ctx.log("method.optimizer adamw_bf16: the Trainer has no bf16-state AdamW; training with adamw_torch")
    if method.optimizer == "adamw_8bit":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise StageFailed("method.optimizer adamw_8bit needs bitsandbytes, which is not installed here; "
                              "install it or recompile with method.optimizer=adamw") from None
    fsdp: dict = {}
    if par.accelerate_fsdp:
        fsdp = {"fsdp": True, "fsdp_config": {
            "version": 2, "reshard_after_forward": par.reshard, "state_dict_type": "FULL_STATE_DICT",
            "cpu_ram_efficient_loading": False, "activation_checkpointing": layout.activation_checkpointing}}
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
        optim=optim,
        seed=method.seed,
        data_seed=method.seed,
        bf16=precision.startswith("bf16") and cuda,
        fp16=precision.startswith("fp16") and cuda,
        activation_checkpointing=layout.activation_checkpointing and not fsdp,
        max_length=method.max_seq_length,
        packing=method.sequence_packing,
        **strategy,
        save_total_limit=2,
        # the best checkpoint cannot be loaded back into parameters sharded at load time (DTensor copy_ fails)
        load_best_model_at_end=has_val and not par.sharded_at_load,
        metric_for_best_model="eval_loss" if has_val else None,
        greater_is_better=False if has_val else None,
        logging_strategy="steps",
        logging_steps=max(1, min(50, steps_per_epoch // 5)),
        logging_first_step=True,
        logging_nan_inf_filter=False,
        report_to="none",
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
    ), steps_per_epoch

def stage_outputs(ctx: RunContext) -> tuple[Path, Path, bool]:
    """(checkpoints dir, metrics.jsonl, progress bar?) of a training stage; quiets the libraries."""
    plan = ctx.plan
    checkpoints = ctx.path(ctx.stage.outputs.get("checkpoints", f"run/{ctx.stage.name}/checkpoints"))
    metrics_path = ctx.path(plan.artifacts.metrics) if ctx.stage.name == "train" else ctx.dir / "metrics.jsonl"
    tty = sys.stdout.isatty() and rank() == 0
    quiet_libraries(tty)
    return checkpoints, metrics_path, tty

def save_weights(trainer, out: Path, method: Lora | Sft) -> None:
    """Write the adapter (PEFT format) or the full model + tokenizer, atomically (temp dir + rename)."""
    tmp = out.with_name(f".{out.name}.tmp")
    if rank() == 0 and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    if method.kind == "lora":
        if trainer.is_fsdp_enabled or trainer.is_distributed_loading_by_transformers:
            trainer.save_model(str(tmp))
        elif rank() == 0:
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(str(tmp), safe_serialization=True)
    else:
        trainer.save_model(str(tmp))  # all ranks: FSDP gathers the full state dict; rank 0 writes
    trainer.accelerator.wait_for_everyone()
    if rank() == 0:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle: keep outputs to safetensors + json
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    trainer.accelerator.wait_for_everyone()

def trim_metrics(metrics: Metrics, resume: str | None) -> None:
    """A fresh run starts a new metrics file; a resumed one drops what came after its checkpoint."""
    if resume is None:
        metrics.path.unlink(missing_ok=True)
        return
    step = int(Path(resume).name.rsplit("-", 1)[-1])
    kept = [r for r in metrics.read() if int(r.get("step", 0)) <= step]
    metrics.path.unlink(missing_ok=True)
    for record in kept:
        metrics.write(**record)

def quiet_libraries(tty: bool) -> None:
    """Library chatter off; progress bars only on a terminal."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    datasets.logging.set_verbosity_error()
    if not tty:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def lora_config(method):
    from peft import LoraConfig

    lora = method.lora
    targets = "all-linear" if "all-linear" in lora.target_modules else list(lora.target_modules)
    return LoraConfig(r=lora.adapter_dim, lora_alpha=lora.effective_alpha, lora_dropout=lora.adapter_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


def guarded(trainer_cls):
    """`trainer_cls` refusing a non-finite loss at the step it appears (the NaN guard of every training stage)."""
    import torch

    class Guarded(trainer_cls):
        def training_step(self, *args, **kwargs):
            loss = super().training_step(*args, **kwargs)
            if not bool(torch.isfinite(loss).all()):
                raise NonFiniteLoss(self.state.global_step + 1, float(loss.detach().float().mean()))
            return loss

    Guarded.__name__ = f"Guarded{trainer_cls.__name__}"
    return Guarded


def fit(ctx: RunContext, trainer, callback, method, resume: str | None, checkpoints: Path, out: Path,
        weights) -> None:
    """trainer.train with the lifecycle's endings: a non-finite loss -> StageFailed, SIGTERM -> Cancelled, else
    the weights saved (`weights`: the method as save_weights sees it, kind lora or not) and the status completed."""
    if resume:
        ctx.log(f"resumed from {Path(resume).name} ({resume})")
    try:
        with warnings.catch_warnings():
            # peft and TRL read model.is_gradient_checkpointing every step: deprecated in transformers 5.x
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                    category=FutureWarning)
            trainer.train(resume_from_checkpoint=resume)
    except NonFiniteLoss as exc:
        raise StageFailed(f"{exc}: training diverged (learning rate {method.learning_rate:g}); lower "
                          "method.learning_rate and rerun") from None
    state = trainer.state
    if callback.cancelled:
        raise Cancelled(f"SIGTERM: checkpoint saved at step {state.global_step} of {state.max_steps} in "
                        f"{checkpoints.relative_to(ctx.bundle)}; {ctx.resume_hint()}")
    save_weights(trainer, out, weights)
    lora = weights.kind == "lora"
    if rank() == 0 and not lora:
        trainer.processing_class.save_pretrained(str(out))
    ctx.status.update(steps_completed=state.global_step, total_steps=state.max_steps,
                      percentage_done=100.0 if not callback.stopped_early else
                      round(100.0 * state.global_step / max(1, state.max_steps), 2),
                      best_checkpoint=Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None)
    ctx.log(f"saved {'the adapter' if lora else 'the model'} to {out.relative_to(ctx.bundle)} after "
            f"{state.global_step} steps"
            + (f" (best epoch {callback.best_epoch}, val_loss {callback.best_val:.4f})" if callback.best_val else ""))


def resume_point(ctx: RunContext, checkpoints: Path, par: Parallel) -> str | None:
    """The checkpoint to resume from; none for a model sharded at load time (its checkpoints hold no optimizer)."""
    resume = last_checkpoint(checkpoints)
    if resume and par.sharded_at_load:
        ctx.log(f"not resuming from {Path(resume).name}: a model sharded at load time ({par.describe()}) has no "
                "optimizer state in its checkpoints; training starts over")
        return None
    return resume


def prepare(trainer, tty: bool) -> str:
    """Checks and settles a built trainer: no PrinterCallback off a terminal (the Lifecycle callback prints its
    own lines), and a distributed setup when torchrun started several processes. Returns accelerate's
    distributed type (NO, MULTI_CPU, MULTI_GPU, FSDP, ...)."""
    from transformers import PrinterCallback

    if not tty:
        trainer.remove_callback(PrinterCallback)
    distributed = str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1]
    if world_size() > 1 and distributed == "NO":
        raise StageFailed(f"{world_size()} processes but accelerate set up no distributed training: each rank "
                          "would train alone; check the torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR)")
    return distributed


def trainable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
