"""What a stage runs with: the plan, the bundle folder, its own run/<stage>/ folder, its status.

Also the stage lifecycle (run_stage): status transitions, SIGTERM -> cancelled, failures with
their reason, peak memory in the status.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from runtime.status import Status
from schemas.plan import Plan, Stage


class StageFailed(Exception):
    """A failure with a reason a user can act on (no traceback)."""


class Cancelled(Exception):
    """SIGTERM arrived; the stage saved what it could."""


@dataclass
class RunContext:
    plan: Plan
    bundle: Path
    stage: Stage
    status: Status
    started: float = field(default_factory=time.monotonic)
    stop_requested: bool = False

    @classmethod
    def load(cls, plan_path: Path, stage_name: str) -> RunContext:
        plan_path = plan_path.resolve()
        if not plan_path.is_file():
            raise StageFailed(f"{plan_path} does not exist: pass the bundle's plan.json")
        try:
            plan = Plan.model_validate_json(plan_path.read_text())
        except ValidationError as exc:
            raise StageFailed(f"{plan_path} is not a valid plan ({exc.error_count()} problems): "
                              f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}; recompile it") from None
        stage = next((s for s in plan.stages if s.name == stage_name), None)
        if stage is None:
            raise StageFailed(f"plan {plan.id} has no stage {stage_name!r}; it has "
                              f"{', '.join(s.name for s in plan.stages)}")
        bundle = plan_path.parent
        status = Status(bundle / "run" / stage_name / "status.json", plan_id=plan.id, stage=stage_name,
                        writer=rank() == 0)
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


def run_stage(ctx: RunContext, body: Callable[[], object]) -> int:
    """Run a stage body through the lifecycle; the exit code says how it ended."""

    def on_term(signum, frame):  # the body checks ctx.stop_requested at step boundaries
        ctx.stop_requested = True

    previous = signal.signal(signal.SIGTERM, on_term)
    ctx.status.update(state="running", error=None)
    try:
        body()
    except Cancelled as exc:
        ctx.status.update(state="cancelled", error=str(exc) or "SIGTERM", elapsed_seconds=_elapsed(ctx),
                          peak_memory_bytes=peak_memory_bytes())
        ctx.log(f"cancelled: {exc}")
        return 143
    except StageFailed as exc:
        ctx.status.update(state="failed", error=str(exc), elapsed_seconds=_elapsed(ctx),
                          peak_memory_bytes=peak_memory_bytes())
        sys.stderr.write(f"[{ctx.stage.name}] failed: {exc}\n")
        return 1
    except Exception as exc:  # our bug or the library's: keep the traceback
        ctx.status.update(state="failed", error=f"{type(exc).__name__}: {exc}", elapsed_seconds=_elapsed(ctx),
                          peak_memory_bytes=peak_memory_bytes())
        traceback.print_exc()
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    ctx.status.update(state="completed", elapsed_seconds=_elapsed(ctx), peak_memory_bytes=peak_memory_bytes())
    ctx.log("completed")
    return 0


def _elapsed(ctx: RunContext) -> float:
    return round(time.monotonic() - ctx.started, 3)
