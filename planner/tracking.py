"""Tracking as plan.json carries it: spec.tracking with its defaults resolved (pure). The run is named after the
bundle; the files go inside the bundle unless tracking.dir or tracking.uri says otherwise; the experiment (MLflow)
or project (W&B) is the goal's name unless set; `packages` lists what the stages must import to log."""

from __future__ import annotations

from schemas.tracking import PACKAGES, REPORT_TO, SQLITE_PACKAGES, Tracking, TrackingPlan

DEFAULT_DIR = "run/tracking"  # inside the bundle: run/tracking/<backend>


def packages(spec: Tracking) -> dict[str, str]:
    """What the stages import to log to the backend: import name -> distribution (an MLflow SQLite store, the
    default, needs SQLAlchemy and Alembic, which mlflow-skinny does not install)."""
    if spec.backend == "none":
        return {}
    out = dict(PACKAGES[spec.backend])
    if spec.backend == "mlflow" and (spec.uri is None or spec.uri.startswith("sqlite:")):
        out.update(SQLITE_PACKAGES)
    return out


def resolve(spec: Tracking, *, name: str, goal: str) -> TrackingPlan | None:
    """The resolved tracking of a bundle named `name` for `goal`; None for tracking=none."""
    backend = spec.backend
    if backend == "none":
        return None
    return TrackingPlan(
        backend=backend,
        run_name=name,
        report_to=REPORT_TO[backend],
        dir=spec.dir or f"{DEFAULT_DIR}/{backend}",
        uri=spec.uri if backend == "mlflow" else None,
        experiment=(spec.experiment or goal) if backend == "mlflow" else None,
        project=(spec.project or goal) if backend == "wandb" else None,
        entity=spec.entity if backend == "wandb" else None,
        mode=spec.mode if backend == "wandb" else None,
        packages=packages(spec),
    )
