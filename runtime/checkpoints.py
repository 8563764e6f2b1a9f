"""Where a training stage reads and writes weights: the starting weights, its output folder, the checkpoints
it resumes from after a kill, its metrics file, and the atomic save of the adapter or the model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from runtime.context import RunContext, StageFailed, rank
from runtime.models import model_dir
from runtime.parallel import Parallel
from runtime.status import Metrics, replace_jsonl, write_json_atomic
from schemas.plan import ResolvedMethod


def source_for(ctx: RunContext, method: ResolvedMethod) -> str:
    """The starting weights: the stage's input "base" (the train_sft stage's model), else method.sft_base (a
    DPO plan on the team's own SFT model), else the plan's model."""
    base = ctx.stage.inputs.get("base")
    if base:
        path = ctx.path(base)
        if not path.is_dir():
            raise StageFailed(f"the SFT base {base} does not exist: run the train_sft stage first")
        return str(path)
    sft_base = getattr(method, "sft_base", None)
    if sft_base:
        local = Path(sft_base).expanduser()
        return str(local) if local.is_dir() else sft_base
    return model_dir(ctx.plan)


def output_dir(ctx: RunContext, lora: bool) -> Path:
    """Where the stage saves its weights: train_sft's model output, else the plan's adapter or model folder."""
    plan = ctx.plan
    if ctx.stage.name == "train_sft":
        return ctx.path(ctx.stage.outputs["model"])
    relative = (plan.artifacts.adapter_dir if lora else plan.artifacts.model_dir) or ctx.stage.outputs.get("weights")
    if not relative:
        raise StageFailed(
            f"plan {plan.id} names no output directory for the {'adapter' if lora else 'model'} weights; recompile it"
        )
    return ctx.path(relative)


def checkpoints_dir(ctx: RunContext) -> Path:
    return ctx.path(ctx.stage.outputs.get("checkpoints", f"run/{ctx.stage.name}/checkpoints"))


def metrics_file(ctx: RunContext) -> Path:
    """plan.artifacts.metrics for the train stage (the gate reads it); run/<stage>/metrics.jsonl otherwise."""
    return ctx.path(ctx.plan.artifacts.metrics) if ctx.stage.name == "train" else ctx.dir / "metrics.jsonl"


def short_name(ctx: RunContext, source: str) -> str:
    """A starting-weights path as the log shows it: bundle-relative, else its folder name, else the hub name."""
    try:
        return str(Path(source).relative_to(ctx.bundle))
    except ValueError:
        return Path(source).name if Path(source).is_dir() else source


# ----------------------------------------------------------------------------- resume


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint; rank 0 removes torn ones. The Trainer writes trainer_state.json last, so a
    checkpoint is complete when that file holds the state of its own step (a kill mid-write leaves it cut short)."""
    if not folder.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for path in folder.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if not path.is_dir() or not suffix.isdigit():
            continue
        if _complete(path, int(suffix)):
            found.append((int(suffix), path))
        elif rank() == 0:  # killed while saving: nothing in it can be trusted
            shutil.rmtree(path, ignore_errors=True)
    return str(max(found)[1]) if found else None


def _complete(path: Path, step: int) -> bool:
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == step


def resume_point(ctx: RunContext, checkpoints: Path, par: Parallel) -> str | None:
    """The checkpoint to resume from; none for a model sharded at load time (its checkpoints hold no optimizer)."""
    resume = last_checkpoint(checkpoints)
    if resume and par.sharded_at_load:
        ctx.log(
            f"not resuming from {Path(resume).name}: a model sharded at load time ({par.describe()}) has no "
            "optimizer state in its checkpoints; training starts over"
        )
        return None
    return resume


def trim_metrics(metrics: Metrics, resume: str | None) -> None:
    """A fresh run starts a new metrics file; a resumed one drops what came after its checkpoint (and a line a kill
    cut short), replacing the file atomically: a kill now keeps the old lines or the trimmed ones."""
    if resume is None:
        metrics.path.unlink(missing_ok=True)
        return
    step = int(Path(resume).name.rsplit("-", 1)[-1])
    replace_jsonl(metrics.path, [r for r in metrics.read() if int(r.get("step", 0)) <= step])


# ----------------------------------------------------------------------------- the logging window


# What the Trainer accumulates between two logging steps and a checkpoint does not keep: the loss summed since the
# last logged step (Trainer._tr_loss) and that step, and TRL's per-step metrics waiting to be
# averaged into the next log line (DPO's rewards, GRPO's reward, ...). Saved into each checkpoint before the
# Trainer's own files (trainer_state.json last marks it complete) and put back on resume, so the first line logged
# after a resume averages the same steps, with the same values, as an uninterrupted run. One file per rank: each
# rank's loss is its own until the log line averages them.
def window_file(folder: Path) -> Path:
    return folder / f"logging_window-rank{rank()}.json"


def save_window(trainer: Any, folder: Path) -> None:
    metrics = getattr(trainer, "_metrics", None)
    window = {
        "tr_loss": float(trainer._tr_loss.item()),
        "last_logged": trainer._globalstep_last_logged,
        "metrics": {k: list(v) for k, v in metrics["train"].items()} if isinstance(metrics, dict) else None,
        "total_train_tokens": getattr(trainer, "_total_train_tokens", None),
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(window_file(folder), window)


def load_window(checkpoint: str | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    try:
        window = json.loads(window_file(Path(checkpoint)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a checkpoint from before this file: the first log after the resume averages fewer steps
    return window if isinstance(window, dict) else None


def restore_window(trainer: Any, window: dict[str, Any]) -> None:
    """Put a checkpoint's logging window back (right before the first training step after the resume)."""
    import torch

    trainer._tr_loss = torch.tensor(window["tr_loss"], dtype=trainer._tr_loss.dtype, device=trainer._tr_loss.device)
    trainer._globalstep_last_logged = int(window["last_logged"])
    metrics = getattr(trainer, "_metrics", None)
    if isinstance(metrics, dict) and window.get("metrics") is not None:
        metrics["train"].clear()
        metrics["train"].update({k: list(v) for k, v in window["metrics"].items()})
    if window.get("total_train_tokens") is not None and hasattr(trainer, "_total_train_tokens"):
        trainer._total_train_tokens = window["total_train_tokens"]


# ----------------------------------------------------------------------------- save


def save_weights(trainer: Any, out: Path, lora: bool) -> None:
    """Write the adapter (PEFT format) or the full model + tokenizer, atomically (temp dir + rename)."""
    tmp = out.with_name(f".{out.name}.tmp")
    if rank() == 0 and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    if lora:
        # is_distributed_loading_by_transformers: transformers >= 5.20 (tensor parallelism applied at load)
        if trainer.is_fsdp_enabled or getattr(trainer, "is_distributed_loading_by_transformers", False):
            trainer.save_model(str(tmp))
        elif rank() == 0:
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(str(tmp), safe_serialization=True)
    else:
        trainer.save_model(str(tmp))  # all ranks: FSDP gathers the full state dict; rank 0 writes
    trainer.accelerator.wait_for_everyone()
    if rank() == 0:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle: keep outputs to safetensors + json
        if not lora:
            trainer.processing_class.save_pretrained(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    trainer.accelerator.wait_for_everyone()
