"""The Lifecycle of one training run: what every training recipe (SFT, DPO, GRPO) reports while the trainer runs.

status.json (steps, epochs, losses, tokens/s, peak memory) and metrics.jsonl (a line per logging step and
per evaluation) on rank 0; plain progress lines off a terminal; SIGTERM (or Slurm's time-limit warning,
SIGUSR1) -> a checkpoint at the next step end and a stop on every rank; early stopping on val_loss; a non-finite
logged loss -> NonFiniteLoss. The state and the decisions are plain Python here; callback() wraps them as the
transformers TrainerCallback the trainer calls.
"""

from __future__ import annotations

import math
import time
from typing import Any

from runtime.context import RunContext, peak_memory_bytes, world_size
from runtime.status import Metrics
from schemas.method import EarlyStopping


class NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        super().__init__(f"loss is {value} at step {step}")
        self.step, self.value = step, value


def epoch_number(epoch: float) -> int:
    """The 1-based epoch a fractional trainer epoch falls in: 0.6 -> 1, 1.0 -> 1, 1.2 -> 2."""
    return max(1, math.ceil(epoch - 1e-6))


class Lifecycle:
    """Status, metrics, early stopping and SIGTERM of one training run; rank 0 writes.

    `extra_keys`: the trainer's own logged metrics (DPO's rewards/margins, GRPO's reward, ...) copied into each
    metrics.jsonl step line, and eval_-prefixed into each epoch line."""

    def __init__(
        self,
        ctx: RunContext,
        metrics: Metrics,
        early_stopping: EarlyStopping,
        tty: bool,
        resumed_from: str | None,
        extra_keys: tuple[str, ...] = (),
    ):
        self.ctx, self.metrics, self.early_stopping, self.tty = ctx, metrics, early_stopping, tty
        self.resumed_from, self.extra_keys = resumed_from, extra_keys
        self.cancelled = False
        self.stopped_early = False
        self.best_epoch: int | None = None
        self.best_val: float | None = None
        self.last_val: float | None = None
        self.last_train: float | None = None
        self.epoch_losses: list[tuple[float, int]] = []  # (mean loss of a logging interval, its steps)
        self.tokens_per_second: float | None = None
        self._last_logged_step = 0
        self.start_step = 0  # the step this start began at (a resumed run: its checkpoint's)
        self._last_tokens: float | None = None
        self._last_time = time.monotonic()
        self._last_status = 0.0

    # ------------------------------------------------------------------ events (the trainer's, via callback())

    def train_begin(self, state: Any) -> None:
        self.start_step = state.global_step
        # a resumed run weighs its first logged loss from the last step logged before the checkpoint, as the Trainer
        # (whose logging window the checkpoint restores) averages it
        logged = [int(h["step"]) for h in state.log_history if "loss" in h and "step" in h]
        self._last_logged_step = max(logged, default=0)
        self._history(state)
        self._status(state, force=True, resumed_from=self.resumed_from, stopped_early=False)

    def step_end(self, args: Any, state: Any, control: Any) -> None:
        if self._stop_requested(args) and not self.cancelled:
            self.cancelled = True
            control.should_save = True
            control.should_training_stop = True
            self.ctx.log(f"{self.ctx.stop_signal}: saving a checkpoint at step {state.global_step} and stopping")
        self._status(state)

    def epoch_end(self, control: Any) -> None:
        if self.cancelled:  # the step-end checkpoint is the one to keep
            control.should_evaluate = False
            control.should_save = False

    def log(self, state: Any, logs: dict[str, Any]) -> None:
        now = time.monotonic()
        if "eval_runtime" in logs:  # tokens/s counts training time, not evaluation
            self._last_time += float(logs["eval_runtime"])
        if "num_tokens" in logs and "loss" in logs:
            if self._last_tokens is not None and now > self._last_time:
                rate = (logs["num_tokens"] - self._last_tokens) / (now - self._last_time)
                self.tokens_per_second = round(rate, 1)
            self._last_tokens, self._last_time = logs["num_tokens"], now
        if "loss" in logs:
            self._train_loss(state, logs)
        if "eval_loss" in logs:
            self._val_loss(state, logs)

    def evaluate(self, state: Any, control: Any) -> None:
        """Early stopping: val_loss not better than the best by min_delta for `patience` evaluations."""
        patience, delta = self.early_stopping.patience, self.early_stopping.min_delta
        best, waited = math.inf, 0
        for loss in (h["eval_loss"] for h in state.log_history if "eval_loss" in h):
            if loss < best - delta:
                best, waited = loss, 0
            else:
                waited += 1
        if waited >= patience and not control.should_training_stop:
            control.should_training_stop = True
            self.stopped_early = True
            self.ctx.log(f"early stopping: val_loss has not improved by {delta} for {patience} evaluation(s)")

    def train_end(self, state: Any) -> None:
        self._status(state, force=True, stopped_early=self.stopped_early)

    def callback(self) -> Any:
        """This lifecycle as a transformers TrainerCallback (transformers imports only here, at run time)."""
        from transformers import TrainerCallback

        life = self

        class LifecycleCallback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                life.train_begin(state)

            def on_step_end(self, args, state, control, **kwargs):
                life.step_end(args, state, control)
                return control

            def on_epoch_end(self, args, state, control, **kwargs):
                life.epoch_end(control)
                return control

            def on_log(self, args, state, control, logs=None, **kwargs):
                life.log(state, logs or {})
                return control

            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                life.evaluate(state, control)
                return control

            def on_train_end(self, args, state, control, **kwargs):
                life.train_end(state)

        return LifecycleCallback()

    # ------------------------------------------------------------------ what the events do

    def _stop_requested(self, args: Any) -> bool:
        stop = self.ctx.stop_requested
        if world_size() > 1:  # every rank stops at the same step, or DDP would hang
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                flag = torch.tensor([1 if stop else 0], device=args.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = bool(flag.item())
        return stop

    def _train_loss(self, state: Any, logs: dict[str, Any]) -> None:
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise NonFiniteLoss(state.global_step, loss)
        self.last_train = loss
        self.epoch_losses.append((loss, max(1, state.global_step - self._last_logged_step)))
        self._last_logged_step = state.global_step
        extra = {k: logs[k] for k in self.extra_keys if k in logs}
        self.metrics.write(
            **{
                **extra,
                "kind": "step",
                "step": state.global_step,
                "epoch": round(state.epoch or 0.0, 4),
                "train_loss": loss,
                "val_loss": None,
                "learning_rate": logs.get("learning_rate"),
                "tokens_per_second": self.tokens_per_second,
            }
        )
        if not self.tty:
            self.ctx.log(
                f"step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.2f} "
                f"loss {loss:.4f} lr {logs.get('learning_rate', 0):.3g}"
                + (f" {self.tokens_per_second:.0f} tok/s" if self.tokens_per_second else "")
            )

    def _val_loss(self, state: Any, logs: dict[str, Any]) -> None:
        val = float(logs["eval_loss"])
        self.last_val = val
        steps = sum(n for _, n in self.epoch_losses)
        train = sum(v * n for v, n in self.epoch_losses) / steps if steps else self.last_train
        self.epoch_losses = []
        improved = self.best_val is None or val < self.best_val - self.early_stopping.min_delta
        if self.best_val is None or val < self.best_val:
            self.best_val, self.best_epoch = val, epoch_number(state.epoch or 0.0)
        extra = {f"eval_{k}": logs[f"eval_{k}"] for k in self.extra_keys if f"eval_{k}" in logs}
        self.metrics.write(
            **{
                **extra,
                "kind": "epoch",
                "step": state.global_step,
                "epoch": round(state.epoch or 0.0, 4),
                "train_loss": train,
                "val_loss": val,
                "learning_rate": _last_lr(state),
                "tokens_per_second": self.tokens_per_second,
            }
        )
        self.ctx.log(
            f"epoch {state.epoch or 0:.2f}: train_loss {train if train is not None else float('nan'):.4f} "
            f"val_loss {val:.4f}{'' if improved else ' (no improvement)'}"
        )
        self._status(state, force=True)

    def _history(self, state: Any) -> None:
        """Best val_loss so far from the (possibly resumed) log history."""
        evals = [(h["epoch"], h["eval_loss"]) for h in state.log_history if "eval_loss" in h]
        if evals:
            epoch, loss = min(evals, key=lambda e: e[1])
            self.best_val, self.best_epoch = loss, epoch_number(epoch)
            self.last_val = evals[-1][1]
        losses = [h["loss"] for h in state.log_history if "loss" in h]
        if losses:
            self.last_train = losses[-1]

    def _status(self, state: Any, force: bool = False, **extra: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < 1.0:  # status.json at most once a second between events
            return
        self._last_status = now
        total = state.max_steps or 0
        self.ctx.status.update(
            steps_completed=state.global_step,
            total_steps=total,
            epochs_completed=math.floor((state.epoch or 0.0) + 1e-6),
            percentage_done=round(100.0 * state.global_step / total, 2) if total else 0.0,
            best_epoch=self.best_epoch,
            train_loss=self.last_train,
            val_loss=self.last_val,
            tokens_per_second=self.tokens_per_second,
            elapsed_seconds=round(now - self.ctx.started, 3),
            peak_memory_bytes=peak_memory_bytes(),
            **extra,
        )


def _last_lr(state: Any) -> float | None:
    for h in reversed(state.log_history):
        if "learning_rate" in h:
            return h["learning_rate"]
    return None
