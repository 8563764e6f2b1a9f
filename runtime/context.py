"""What a stage runs with: the plan, the bundle folder, its own run/<stage>/ folder, its status.

Also the stage lifecycle (run_stage): status transitions, SIGTERM -> cancelled, Slurm's time-limit warning
(SIGUSR1) -> checkpoint and requeued, failures with
their reason, peak memory in the status; the skip rule for a stage that already completed for this
plan (already_completed), and the exact commands that resume a stopped one (resume_hint).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runtime.status import Status
from schemas.plan import Plan, Stage

# The bundle's run script per launcher (planner.bundle.RUN_SCRIPT; the runtime imports nothing from planner).
RUN_SCRIPTS = {"local": "launch/run_local.sh", "torchrun": "launch/run_torchrun.sh", "slurm": "launch/submit.sh"}


class StageFailed(Exception):
    """A failure with a reason a user can act on (no traceback)."""


class Cancelled(Exception):
    """SIGTERM (or the time-limit warning) arrived; the stage saved what it could. `progressed`: steps were
    completed since this start (a requeue then resumes further on)."""

    def __init__(self, message: str = "", progressed: bool = False):
        super().__init__(message)
        self.progressed = progressed


@dataclass
class RunContext:
    plan: Plan
    bundle: Path
    stage: Stage
    status: Status
    started: float = field(default_factory=time.monotonic)
    stop_requested: bool = False
    stop_signal: str = "SIGTERM"  # what asked the stage to stop, as the log and status.json name it
    requeue: bool = False  # stopping at Slurm's time-limit warning: requeue, do not cancel (run_stage)
    lock_fd: int | None = None  # run/<stage>/.lock, held while the stage runs (hold_stage_lock)
    tracker: Any = None  # the stage's experiment-tracking run while it runs (runtime.tracking.stage_run)

    @classmethod
    def load(cls, plan_path: Path, stage_name: str) -> RunContext:
        plan_path = plan_path.resolve()
        if not plan_path.is_file():
            raise StageFailed(f"{plan_path} does not exist: pass the bundle's plan.json")
        try:
            plan = Plan.model_validate_json(plan_path.read_text())
        except ValidationError as exc:
            raise StageFailed(
                f"{plan_path} is not a valid plan ({exc.error_count()} problems): "
                f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}; recompile it"
            ) from None
        stage = next((s for s in plan.stages if s.name == stage_name), None)
        if stage is None:
            raise StageFailed(
                f"plan {plan.id} has no stage {stage_name!r}; it has {', '.join(s.name for s in plan.stages)}"
            )
        bundle = plan_path.parent
        status = Status(
            bundle / "run" / stage_name / "status.json", plan_id=plan.id, stage=stage_name, writer=rank() == 0
        )
        return cls(plan=plan, bundle=bundle, stage=stage, status=status)

    @property
    def dir(self) -> Path:
        path = self.bundle / "run" / self.stage.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, relative: str) -> Path:
        """A bundle-relative artifact path from the plan, as an absolute path."""
        return self.bundle / relative

    def log(self, message: str) -> None:
        if rank() == 0:
            print(f"[{self.stage.name}] {message}", flush=True)

    def resume_hint(self) -> str:
        """The exact commands that resume this stage (resume_hint)."""
        return resume_hint(self)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def peak_memory_bytes() -> int:
    """CUDA max allocated on GPU, peak RSS on CPU."""
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return int(torch.cuda.max_memory_allocated())
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def free_bytes(path: Path) -> int | None:
    """Space left to this user on the filesystem of `path` (its nearest existing folder); None if unknown."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                st = os.statvfs(folder)
            except OSError:
                return None
            return st.f_bavail * st.f_frsize
    return None


def disk_full(exc: BaseException, path: Path | None = None) -> bool:
    """Whether `exc` (or what caused it) is a full disk: ENOSPC/EDQUOT, the text of one (safetensors and torch.save
    wrap the OSError in their own errors, torch.save without any errno), or under 1 MiB left where it wrote."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen) or "Disk quota exceeded" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    free = free_bytes(path) if path is not None else None
    return free is not None and free < 1 << 20


def human_bytes(n: int | None) -> str:
    if n is None:
        return "an unknown amount"
    size = float(n)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


# Slurm's time-limit warning (`#SBATCH --signal=USR1@<lead>` on a training stage, schemas.plan.Stop): scancel
# sends SIGTERM, so the two are told apart by the signal itself.
WARNING_SIGNAL = signal.SIGUSR1


def slurm_start() -> str | None:
    """This start of the Slurm job, as "<job id>/<restart count>" (None outside Slurm): the batch script requeues
    the job only when status.json names this very start (templates/slurm/stage.sbatch.j2)."""
    job = os.environ.get("SLURM_JOB_ID")
    return f"{job}/{os.environ.get('SLURM_RESTART_COUNT') or 0}" if job else None


# Exit code of a stage (and of the bundle's run script) that refuses to start because the same stage (the same
# bundle) is running already (sysexits' EX_TEMPFAIL: try again once it has ended).
BUSY = 75
LOCK = ".lock"


class Busy(Exception):
    """The stage is running in another process; the message names it and how to stop it."""


def hold_stage_lock(ctx: RunContext) -> None:
    """Take run/<stage>/.lock (flock, held until this process ends: the kernel releases it even after a SIGKILL) and
    write this pid into it; Busy if another process holds it. Rank 0 takes it for a multi-process stage."""
    if rank() != 0:
        return
    path = ctx.dir / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        bundle = shlex.quote(str(ctx.bundle))
        raise Busy(
            f"stage {ctx.stage.name} of {ctx.bundle} is already running (pid {holder}); a second run would overwrite "
            f"its checkpoints and status. Watch it: python -m planner.status {bundle}; stop it: python -m "
            f"planner.cancel {bundle} (or kill -TERM {holder}); then run this again"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    ctx.lock_fd = fd  # kept open (and locked) until release_stage_lock, or the end of the process


def release_stage_lock(ctx: RunContext) -> None:
    if ctx.lock_fd is not None:
        os.close(ctx.lock_fd)  # closing the descriptor drops the flock
        ctx.lock_fd = None


def run_stage(ctx: RunContext, body: Callable[[], object]) -> int:
    """Run a stage body through the lifecycle; the exit code says how it ended."""

    def on_term(signum, frame):  # the body checks ctx.stop_requested at step boundaries
        if signum == signal.SIGINT and ctx.stop_requested:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the checkpoint
        ctx.stop_requested = True
        ctx.requeue = False  # a cancel (scancel, kill, Ctrl-C) wins over a time-limit warning before it
        ctx.stop_signal = signal.Signals(signum).name

    def on_warning(signum, frame):  # the time limit is near: checkpoint, then the job requeues (Slurm only)
        if not ctx.stop_requested:
            ctx.requeue = ctx.stage.stop is not None and slurm_start() is not None
            ctx.stop_signal = "the time-limit warning (SIGUSR1)" if ctx.requeue else "SIGUSR1"
        ctx.stop_requested = True

    previous = signal.signal(signal.SIGTERM, on_term)
    previous_int = signal.signal(signal.SIGINT, on_term)  # Ctrl-C stops like SIGTERM: checkpoint, cancelled
    previous_usr1 = signal.signal(WARNING_SIGNAL, on_warning)
    ctx.status.update(state="running", error=None, requeue_for=None)
    try:
        body()
    except Cancelled as exc:
        if ctx.requeue:
            return _requeued(ctx, exc)
        reason = str(exc) or ctx.stop_signal
        if RESUME not in reason:
            reason = f"{reason}; {resume_hint(ctx)}"
        ctx.status.update(
            state="cancelled", error=reason, elapsed_seconds=_elapsed(ctx), peak_memory_bytes=peak_memory_bytes()
        )
        ctx.log(f"cancelled: {reason}")
        return 143
    except StageFailed as exc:
        return _failed(ctx, str(exc))
    except Exception as exc:
        if disk_full(exc):  # the user's disk, not our bug: what to do, no traceback
            where = human_bytes(free_bytes(ctx.dir))
            return _failed(
                ctx,
                f"no space left on device ({type(exc).__name__}: {exc}; {where} free under {ctx.dir}): free some "
                f"space, then {resume_hint(ctx)}",
            )
        traceback.print_exc()  # our bug or the library's: keep the traceback
        return _failed(ctx, f"{type(exc).__name__}: {exc}", quiet=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(WARNING_SIGNAL, previous_usr1)
    # finished_at (epoch seconds): a later stage that completed before this one did must run again (already_completed)
    ctx.status.update(
        state="completed", elapsed_seconds=_elapsed(ctx), peak_memory_bytes=peak_memory_bytes(), finished_at=time.time()
    )
    ctx.log("completed")
    return 0


def _failed(ctx: RunContext, reason: str, quiet: bool = False) -> int:
    """Record a failure in status.json and say it on stderr, the reason as the last word (exit 1). A status that
    cannot be written (a full disk) is said too, and does not hide the reason."""
    try:
        ctx.status.update(
            state="failed", error=reason, elapsed_seconds=_elapsed(ctx), peak_memory_bytes=peak_memory_bytes()
        )
    except OSError as exc:
        sys.stderr.write(f"[{ctx.stage.name}] could not record the failure in {ctx.status.path}: {exc}\n")
    if not quiet:
        sys.stderr.write(f"[{ctx.stage.name}] failed: {reason}\n")
    return 1


def _requeued(ctx: RunContext, exc: Cancelled) -> int:
    """Stopped at the time-limit warning with a checkpoint: status `requeued` for this start (the batch script
    then requeues the job, and the next start resumes from the checkpoint). A start that completed no step
    would requeue forever: that one fails, and says the time limit is too short."""
    common = {"elapsed_seconds": _elapsed(ctx), "peak_memory_bytes": peak_memory_bytes()}
    if not exc.progressed:
        reason = (
            f"the time-limit warning came before this start completed a step ({exc}): the time limit leaves "
            f"no room to train before the {ctx.stage.stop.lead_seconds if ctx.stage.stop else 0} s the stage "
            "needs to stop; raise inventory.time_limit_hours and resubmit"
        )
        ctx.status.update(state="failed", error=reason, **common)
        sys.stderr.write(f"[{ctx.stage.name}] failed: {reason}\n")
        return 1
    requeues = int(ctx.status["requeues"] or 0) + 1
    ctx.status.update(state="requeued", error=None, requeue_for=slurm_start(), requeues=requeues, **common)
    ctx.log(f"requeued: {exc}; the job runs again and resumes from that checkpoint")
    return 143


def already_completed(ctx: RunContext) -> bool:
    """Whether the stage can be skipped: its run/<stage>/status.json says completed for this plan id, every output
    the plan declares for it (stage.outputs) exists, and no stage it runs after (stage.after) has completed since
    it did (that would have changed its inputs). A completed stage that fails a check runs again, and says why;
    a cancelled or failed one always runs (training resumes from its last checkpoint)."""
    previous = ctx.status.previous
    if previous.get("state") != "completed":
        return False
    why = _rerun_reason(ctx, previous)
    if why is None:
        if rank() == 0:
            print(
                f"{ctx.stage.name}: already completed for plan {ctx.plan.id}; skipping (overwrite=true to start over)",
                flush=True,
            )
        return True
    ctx.log(f"completed before, running again: {why}")
    return False


def _rerun_reason(ctx: RunContext, previous: dict) -> str | None:
    if previous.get("plan_id") != ctx.plan.id:
        return f"its status.json is for plan {previous.get('plan_id')}, this is plan {ctx.plan.id}"
    missing = [rel for rel in ctx.stage.outputs.values() if not ctx.path(rel).exists()]
    if missing:
        return f"its output {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
    finished = previous.get("finished_at")
    for name in ctx.stage.after:  # a stage it needs that completed after it did may have changed its inputs
        done = _read_json(ctx.bundle / "run" / name / "status.json").get("finished_at")
        if isinstance(done, (int, float)) and (not isinstance(finished, (int, float)) or done > finished):
            return f"{name}, which it runs after, completed again since"
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


RESUME = "to resume, run"


def resume_hint(ctx: RunContext) -> str:
    """The exact commands that pick a stopped stage up again: the whole bundle (completed stages skip themselves,
    this one resumes from its last checkpoint), or this stage alone, as the bundle's launch script runs it."""
    bundle = shlex.quote(str(ctx.bundle))
    script = RUN_SCRIPTS.get(ctx.plan.decision.launcher, RUN_SCRIPTS["local"])
    return (
        f"{RESUME} the bundle: bash {shlex.quote(str(ctx.bundle / script))} (completed stages are skipped), "
        f"or this stage alone: cd {bundle} && {_stage_command(ctx, script)}"
    )


def _stage_command(ctx: RunContext, script: str) -> str:
    """This stage's command from the bundle's launch/ folder (torchrun for a multi-process stage), else plain."""
    name = ctx.stage.name
    if script.endswith("submit.sh"):
        if (ctx.bundle / "launch" / f"{name}.sbatch").is_file():
            return f"mkdir -p logs && sbatch launch/{name}.sbatch"
    else:
        try:
            lines = (ctx.bundle / script).read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            if line.startswith(f"run_stage {name} "):
                return line.removeprefix(f"run_stage {name} ").strip()
    return f"python -m runtime plan.json --stage {name}"


def _elapsed(ctx: RunContext) -> float:
    return round(time.monotonic() - ctx.started, 3)
