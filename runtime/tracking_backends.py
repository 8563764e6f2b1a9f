"""The tracking backends (runtime.tracking opens them): TensorBoard event files, an MLflow run per stage under the
bundle's run, a W&B run per stage in the bundle's group. Each imports its package when a stage opens its run."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runtime.context import RunContext
from runtime.status import write_json_atomic
from runtime.tracking import (
    MAX_PARAM,
    RUN_FILE,
    TRAINING_TAGS,
    Tracker,
    Value,
    environment,
    hyperparameters,
    location,
    mlflow_uri,
    numbers,
    quiet,
)
from schemas.tracking import TrackingPlan


class _TensorBoard:
    """Event files in <dir>/<bundle>/<stage>/: the plan's hyperparameters as text at the start, the stage's numbers
    as scalars, and the HParams summary (hyperparameters beside the final metrics) at the end. The Trainer's
    TensorBoardCallback writes its own event file in the same folder (TENSORBOARD_LOGGING_DIR)."""

    def __init__(self, ctx: RunContext, t: TrackingPlan, params: dict[str, Value]):
        from torch.utils.tensorboard import SummaryWriter

        self.params = params
        self.logged: dict[str, float] = {}
        self.training = ctx.stage.method is not None
        self.writer = SummaryWriter(log_dir=environment(ctx, t)["TENSORBOARD_LOGGING_DIR"])
        rows = "\n".join(f"| {key} | {value} |" for key, value in params.items())
        self.writer.add_text("plan/hyperparameters", f"| hyperparameter | value |\n|---|---|\n{rows}")
        self.writer.flush()

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        for key, value in numbers(metrics).items():
            self.writer.add_scalar(key, value, step or 0)
            self.logged[key] = value
        self.writer.flush()

    def finish(self, outcome: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        tags = dict.fromkeys(TRAINING_TAGS, 0.0) if self.training else {}
        experiment, start, end = hparams(self.params, {**tags, **self.logged})
        writer = self.writer._get_file_writer()
        writer.add_summary(experiment)
        writer.add_summary(start)
        if outcome == "finished":
            writer.add_summary(end)  # the session's end: a success (TensorBoard shows a failed one as unfinished)
        self.writer.close()


class _MLflow:
    """An MLflow run per stage, named <bundle>/<stage>, the child of the bundle's run (named <bundle>, holding the
    plan's hyperparameters) in the experiment. The stage's run is the active one while the stage runs, so the
    Trainer's MLflowCallback logs into it."""

    def __init__(self, ctx: RunContext, t: TrackingPlan, params: dict[str, Value]):
        import mlflow
        from mlflow import MlflowClient

        for name in ("mlflow", "alembic"):  # their INFO lines (database created, migrations) are not the stage's
            logging.getLogger(name).setLevel(logging.WARNING)
        uri, root = mlflow_uri(ctx, t), location(ctx, t)
        experiment = t.experiment or t.run_name
        tags = {"ladder.bundle": t.run_name, "ladder.plan_id": ctx.plan.id}
        with _locked(ctx.bundle / "run" / "tracking.lock"):  # one process creates the store, experiment, parent
            if t.uri is None:
                root.mkdir(parents=True, exist_ok=True)
            mlflow.set_tracking_uri(uri)
            client = MlflowClient(uri)
            found = client.get_experiment_by_name(experiment)
            artifacts = (root / "artifacts").as_uri() if t.uri is None else None
            experiment_id = found.experiment_id if found else client.create_experiment(experiment, artifacts)
            parents = client.search_runs(
                [experiment_id],
                filter_string=f"tags.`ladder.bundle` = '{t.run_name}' and tags.`ladder.role` = 'bundle'",
                max_results=1,
            )
            if parents:
                parent = parents[0].info.run_id
            else:
                parent = client.create_run(experiment_id, run_name=t.run_name, tags={**tags, "ladder.role": "bundle"})
                parent = parent.info.run_id
                _log_params(client, parent, hyperparameters(ctx.plan, None))
                client.set_terminated(parent)
        previous = _previous_run(ctx, "mlflow")
        if previous is not None and _exists(client, previous):
            mlflow.start_run(run_id=previous)
        else:
            run = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"{t.run_name}/{ctx.stage.name}",
                tags={**tags, "ladder.stage": ctx.stage.name, "mlflow.parentRunId": parent},
            )
            _save_run(ctx, "mlflow", run.info.run_id)
            _log_params(client, run.info.run_id, params)
        self.mlflow = mlflow

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        # MLflow's metric names take letters, digits and _-. :/ only (a mixture part's key has brackets)
        values = {re.sub(r"[^0-9A-Za-z_\-. :/]", "_", key): value for key, value in numbers(metrics).items()}
        with quiet():
            self.mlflow.log_metrics(values, step=step or 0)

    def finish(self, outcome: str) -> None:
        self.mlflow.end_run(status={"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}[outcome])


def _log_params(client: Any, run_id: str, params: dict[str, Value]) -> None:
    from mlflow.entities import Param

    # MLflow 2.x keeps at most 500 characters of a value (a long system prompt): the rest is cut, consistently
    items = [Param(key, str(value)[:MAX_PARAM]) for key, value in params.items()]
    for i in range(0, len(items), 100):  # MLflow takes at most 100 params in one batch
        client.log_batch(run_id, params=items[i : i + 100])


def _exists(client: Any, run_id: str) -> bool:
    try:
        client.get_run(run_id)
    except Exception:  # MlflowException: gone from the store (deleted, or another store)
        return False
    return True


class _Wandb:
    """A W&B run per stage: name <bundle>/<stage>, group <bundle>, job type the stage, config the plan's
    hyperparameters (the Trainer's WandbCallback adds its arguments and logs the steps into it)."""

    def __init__(self, ctx: RunContext, t: TrackingPlan, params: dict[str, Value]):
        import wandb

        root = location(ctx, t)
        root.mkdir(parents=True, exist_ok=True)
        previous = _previous_run(ctx, "wandb")
        self.run = wandb.init(
            project=t.project or t.run_name,
            entity=t.entity,
            group=t.run_name,
            job_type=ctx.stage.name,
            name=f"{t.run_name}/{ctx.stage.name}",
            id=previous,  # None: a new run, wandb picks its id
            resume="allow" if previous else None,
            dir=str(root),
            mode=t.mode or "offline",
            config=params,
            settings=wandb.Settings(console="off", save_code=False, disable_git=True, silent=True),
        )
        _save_run(ctx, "wandb", self.run.id)

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = numbers(metrics)
        if values:
            self.run.log(values)

    def finish(self, outcome: str) -> None:
        self.run.finish(exit_code=0 if outcome == "finished" else 1)


OPENERS: dict[str, Any] = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "wandb": _Wandb}


def open_run(ctx: RunContext, t: TrackingPlan, params: dict[str, Value]) -> Tracker:
    """The stage's run in the plan's backend, opened with the plan's hyperparameters."""
    tracker: Tracker = OPENERS[t.backend](ctx, t, params)
    return tracker


# ----------------------------------------------------------------------------- small helpers


def _previous_run(ctx: RunContext, backend: str) -> str | None:
    """The run id an earlier start of this stage opened with the same backend (run/<stage>/tracking.json)."""
    try:
        data = json.loads((ctx.dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("backend") == backend and isinstance(data.get("run_id"), str):
        return data["run_id"]
    return None


def _save_run(ctx: RunContext, backend: str, run_id: str) -> None:
    write_json_atomic(ctx.dir / RUN_FILE, {"backend": backend, "run_id": run_id, "plan_id": ctx.plan.id})


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (stages of one bundle that start together create the store once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
