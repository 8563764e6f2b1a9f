"""Experiment tracking at run time: every stage logs its metrics and the plan's hyperparameters to the backend that
plan.json names (`plan.tracking`, resolved by the planner: schemas.tracking.TrackingPlan). tracking=none: nothing
here runs and nothing is imported.

runtime.__main__ runs each stage inside `stage_run(ctx)`: it checks the backend's packages are importable (a clear
error before any work), points the backend at its folder for the stage (environment variables the transformers
integrations read, restored afterwards), opens the stage's run on rank 0 with the plan's hyperparameters, and
closes it with the stage's outcome. A training stage's Trainer logs its steps into that open run through its own
integration (report_to, runtime.trainer.training_args); the other stages log their numbers with
`tracking.log(ctx, ...)` (data counts, scores, the gate's verdict, what publish shipped).

The bundle names the run: each stage is <bundle>/<stage> under it. TensorBoard: event files in
<dir>/<bundle>/<stage>/; MLflow: a run named <bundle> in the experiment with a child run per stage; W&B: a run per
stage in the group <bundle>. A stage that runs again (a resume after a kill) continues its MLflow or W&B run: the
run id is kept in run/<stage>/tracking.json. No credential is written anywhere: W&B reads WANDB_API_KEY and MLflow
its MLFLOW_TRACKING_* variables from the environment. The backends themselves are in runtime.tracking_backends.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import netrc
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from runtime.context import Cancelled, RunContext, StageFailed, rank
from schemas.plan import Plan, Stage
from schemas.tracking import INSTALL, TrackingPlan

MAX_PARAM = 500
RUN_FILE = "tracking.json"  # run/<stage>/tracking.json: the backend's run id, so that a rerun continues that run
# What the Trainer's integrations log for a training stage (transformers' rewrite_logs): the HParams view's columns.
TRAINING_TAGS = ("train/loss", "eval/loss")
# What a training stage's status.json measured, logged at its end (runtime.memory puts the plan's figures beside it).
STATUS_KEYS = ("peak_memory_bytes", "tokens_per_second", "memory_ratio", "steps_completed", "best_epoch")
# Environment variables a stage sets for the transformers integrations, or clears so they do not redirect its run.
CLEARED = ("MLFLOW_RUN_ID", "MLFLOW_NESTED_RUN", "WANDB_RUN_ID", "WANDB_RESUME")

Value = str | int | float | bool


class Tracker(Protocol):
    """A stage's open run: log numbers; finish with the stage's outcome (finished, failed or killed)."""

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...

    def finish(self, outcome: str) -> None: ...


class NoTracker:
    """tracking=none, and every rank but 0: logs nothing."""

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        return None

    def finish(self, outcome: str) -> None:
        return None


# ----------------------------------------------------------------------------- what the stage checks and sets


def require(plan: Plan) -> None:
    """StageFailed unless the tracking backend can run here: its packages importable, W&B online with a key."""
    t = plan.tracking
    if t is None:
        return
    missing = sorted({dist for module, dist in t.packages.items() if importlib.util.find_spec(module) is None})
    if missing:
        raise StageFailed(
            f"tracking={t.backend} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed in this environment: {INSTALL} (or re-plan with tracking=none)"
        )
    if t.backend == "wandb" and t.mode == "online" and not _wandb_key():
        raise StageFailed(
            "tracking=wandb with tracking.mode=online needs a W&B API key where the stages run: export WANDB_API_KEY "
            "(the launch scripts pass it through and never write it) or run `wandb login`; or re-plan with "
            "tracking.mode=offline and upload later with `wandb sync`"
        )


def _wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def location(ctx: RunContext, t: TrackingPlan) -> Path:
    """The backend's folder: plan.tracking.dir, relative to the bundle unless absolute."""
    folder = Path(t.dir)
    return folder if folder.is_absolute() else ctx.bundle / folder


def mlflow_uri(ctx: RunContext, t: TrackingPlan) -> str:
    """The MLflow tracking URI: the plan's, or the SQLite store in the backend's folder."""
    return t.uri or f"sqlite:///{location(ctx, t) / 'mlflow.db'}"


def environment(ctx: RunContext, t: TrackingPlan) -> dict[str, str]:
    """What the transformers integration of the backend reads for this stage (the Trainer's callbacks)."""
    root = location(ctx, t)
    if t.backend == "tensorboard":
        return {"TENSORBOARD_LOGGING_DIR": str(root / t.run_name / ctx.stage.name)}
    if t.backend == "mlflow":
        return {"MLFLOW_TRACKING_URI": mlflow_uri(ctx, t), "MLFLOW_EXPERIMENT_NAME": t.experiment or t.run_name}
    env = {"WANDB_DIR": str(root), "WANDB_MODE": t.mode or "offline", "WANDB_PROJECT": t.project or t.run_name}
    env["WANDB_SILENT"] = "true"  # its notices (an offline run has no URL, each time TRL writes a model card)
    if t.entity:
        env["WANDB_ENTITY"] = t.entity
    return env


def report_to(plan: Plan, stage: Stage) -> tuple[list[str], str | None]:
    """TrainingArguments' report_to and run_name for a training stage: the backend's integration, or none."""
    t = plan.tracking
    if t is None:
        return ["none"], None
    return [t.report_to], f"{t.run_name}/{stage.name}"


@contextlib.contextmanager
def stage_run(ctx: RunContext) -> Iterator[Tracker]:
    """The stage's run, open while the stage body runs (see the module docstring); ctx.tracker is it meanwhile."""
    t = ctx.plan.tracking
    if t is None:
        yield NoTracker()
        return
    require(ctx.plan)
    env = environment(ctx, t)
    saved = {name: os.environ.get(name) for name in (*env, *CLEARED)}
    os.environ.update(env)
    for name in CLEARED:
        os.environ.pop(name, None)
    tracker: Tracker = NoTracker()
    try:
        if rank() == 0:
            tracker = _open(ctx, t)
        ctx.tracker = tracker
        try:
            yield tracker
        except Cancelled:
            _close(ctx, tracker, "killed")
            raise
        except BaseException:
            _close(ctx, tracker, "failed")
            raise
        if ctx.stage.method is not None:  # a training stage: what it measured against the plan, at its last step
            tracker.log({f"status/{key}": ctx.status[key] for key in STATUS_KEYS}, ctx.status["steps_completed"])
        _close(ctx, tracker, "finished")
    finally:
        ctx.tracker = None
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log(ctx: RunContext, metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log a stage's numbers to its open run (nothing without tracking, or outside runtime.__main__)."""
    if ctx.tracker is None:
        return
    try:
        ctx.tracker.log(metrics, step)
    except Exception as exc:  # the stage's result is in the bundle either way: a warning, not a failure
        ctx.log(f"warning: tracking could not log {', '.join(sorted(metrics))[:200]} ({type(exc).__name__}: {exc})")


def _close(ctx: RunContext, tracker: Tracker, outcome: str) -> None:
    """End the stage's run with its outcome. The stage's own result stands whatever the tracker does: a run that
    cannot be closed (a tracking server gone away) is a warning, never the stage's failure or a hidden error."""
    try:
        with quiet():
            tracker.finish(outcome)
    except Exception as exc:
        ctx.log(f"warning: tracking could not close this stage's run ({type(exc).__name__}: {exc})")


def _open(ctx: RunContext, t: TrackingPlan) -> Tracker:
    from runtime.tracking_backends import open_run  # the backends' module, and through it their packages, load here

    params = hyperparameters(ctx.plan, ctx.stage)
    try:
        with quiet():
            return open_run(ctx, t, params)
    except StageFailed:
        raise
    except Exception as exc:  # a tracking store or service the user pointed at: say which, without a traceback
        where = mlflow_uri(ctx, t) if t.backend == "mlflow" else str(location(ctx, t))
        raise StageFailed(
            f"tracking={t.backend} could not open its run at {where} ({type(exc).__name__}: {exc}); fix the "
            "tracking settings (tracking.dir, tracking.uri) and re-plan, or re-plan with tracking=none"
        ) from None


# ----------------------------------------------------------------------------- the plan's hyperparameters


def hyperparameters(plan: Plan, stage: Stage | None) -> dict[str, Value]:
    """The flat hyperparameters every run of the bundle logs: what the plan is, and the resolved method and layout
    of the stage (or of the plan's last training stage, for a stage that does not train); an evaluation stage's
    evaluation too. Lists are JSON, null is the text 'null'."""
    spec = plan.spec
    out: dict[str, Value] = {
        "plan.id": plan.id,
        "plan.name": plan.name,
        "goal": spec.goal.name,
        "model": spec.model.name,
        "inventory": spec.inventory.name,
        "method": plan.decision.method,
        "pipeline": ",".join(plan.decision.pipeline) or "none",
        "data.name": spec.data.name,
        "data.format": spec.data.format,
        "data.training_records": plan.data_stats.training.records if plan.data_stats.training else 0,
    }
    if stage is not None:
        out["stage"] = stage.name
    training = stage if stage is not None and stage.method is not None else None
    if training is None and plan.training_stages:
        training = plan.training_stages[-1]
    if training is not None and training.method is not None:
        out.update(_flat("method", training.method.model_dump(mode="json")))
        if training.layout is not None:
            out.update(_flat("layout", training.layout.model_dump(mode="json")))
    if stage is not None and stage.evaluation is not None:
        out.update(_flat("evaluation", stage.evaluation.model_dump(mode="json", exclude={"general_benchmark_path"})))
    return out


def _flat(prefix: str, value: Any) -> dict[str, Value]:
    if isinstance(value, dict):
        out: dict[str, Value] = {}
        for key, item in value.items():
            out.update(_flat(f"{prefix}.{key}", item))
        return out
    if value is None:
        return {prefix: "null"}
    if isinstance(value, (list, tuple)):
        return {prefix: json.dumps(value)}
    return {prefix: value}


def numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers among `metrics` (booleans as 0/1); the rest is not a metric."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
            out[key] = float(value)
    return out


# ----------------------------------------------------------------------------- the backends' libraries


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The tracking libraries' deprecation notices about their own dependencies (SQLAlchemy 2.1 deprecates loader
    options MLflow's store uses) are not the stage's to show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"(mlflow|wandb|sqlalchemy|alembic)\b")
        yield
