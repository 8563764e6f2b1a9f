"""Experiment tracking: the backend every stage logs its metrics and the plan's hyperparameters to
(`tracking=none|tensorboard|mlflow|wandb`), and the few settings each backend reads.

Tracking observes a run and changes nothing in it, so it is not part of the plan id (planner.core.plan_id): turning
it on re-plans the same bundle, and launch=true then runs (and logs) the stages that have not completed. The
planner resolves the defaults into plan.json (`Plan.tracking`, a TrackingPlan); the runtime reads only that.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from schemas.base import Frozen

Backend = Literal["none", "tensorboard", "mlflow", "wandb"]

# The keys each backend reads; a key another backend reads must stay unset (a typo would otherwise pass silently).
KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "tensorboard": ("dir",),
    "mlflow": ("dir", "uri", "experiment"),
    "wandb": ("dir", "project", "entity", "mode"),
}

# The transformers integration (TrainingArguments.report_to) that logs a training stage's steps to each backend.
REPORT_TO: dict[str, str] = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}

# What each backend needs importable where the stages run: import name -> the distribution that provides it.
# tensorboard: the event file format (torch.utils.tensorboard writes it); mlflow: mlflow-skinny is enough; its
# local store (the default) is SQLite through SQLAlchemy and Alembic, which mlflow-skinny does not pull in.
PACKAGES: dict[str, dict[str, str]] = {
    "tensorboard": {"tensorboard": "tensorboard"},
    "mlflow": {"mlflow": "mlflow-skinny"},
    "wandb": {"wandb": "wandb"},
}
SQLITE_PACKAGES: dict[str, str] = {"sqlalchemy": "SQLAlchemy", "alembic": "alembic"}
INSTALL = "pip install 'ladder-planner[tracking]'"

# W&B's own rule for project and entity names, and no credentials inside a tracking URI
_WANDB_NAME = re.compile(r"^[^/\\#?%:\s]{1,128}$")
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*@")


class Tracking(Frozen):
    """Where every stage logs its metrics and the plan's hyperparameters; the run is named after the bundle.

    Not part of the plan id: tracking observes a run, it does not change it."""

    backend: Backend = Field(
        "none",
        description="none: nothing is logged beyond the bundle's own status.json, metrics.jsonl and gate report; "
        "tensorboard: event files; mlflow: an MLflow tracking store; wandb: Weights & Biases. Each needs its package "
        f"where the stages run ({INSTALL}).",
    )
    dir: str | None = Field(
        None,
        min_length=1,
        description="Where the backend writes its files. tensorboard: the --logdir (a run per stage in "
        "<dir>/<bundle>/<stage>); mlflow: the folder of its local SQLite store and artifacts (when uri is null); "
        "wandb: WANDB_DIR (offline runs in <dir>/wandb/). A relative path is relative to the folder the planner "
        "runs in. null: inside the bundle, run/tracking/<backend>, so nothing is lost and nothing lands in the "
        "working folder.",
    )
    uri: str | None = Field(
        None,
        min_length=1,
        description="mlflow: the tracking URI (http://host:5000, databricks, sqlite:////abs/path.db). null: a local "
        "SQLite store, sqlite:///<dir>/mlflow.db. Credentials go in MLFLOW_TRACKING_TOKEN / "
        "MLFLOW_TRACKING_USERNAME and _PASSWORD at run time (launcher.env_passthrough), never in the URI.",
    )
    experiment: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="mlflow: the experiment the bundle's runs go to. null: the goal's name.",
    )
    project: str | None = Field(None, description="wandb: the project (WANDB_PROJECT). null: the goal's name.")
    entity: str | None = Field(
        None, description="wandb: the team or user (WANDB_ENTITY). null: the API key's default entity."
    )
    mode: Literal["offline", "online"] = Field(
        "offline",
        description="wandb: offline writes the runs to dir only (upload later with `wandb sync`); online streams "
        "them to W&B and needs WANDB_API_KEY in the environment where the stages run (the launch scripts pass it "
        "through; it is never written into the bundle).",
    )

    @field_validator("project", "entity")
    @classmethod
    def _wandb_name(cls, value: str | None) -> str | None:
        if value is not None and not _WANDB_NAME.match(value):
            raise ValueError(f"{value!r} is not a W&B name: at most 128 characters, none of / \\ # ? % : or spaces")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        # before validation, on the whole block: the error then never repeats the value (it may hold a password)
        uri = data.get("uri") if isinstance(data, dict) else None
        if isinstance(uri, str) and _USERINFO.match(uri):
            raise PydanticCustomError(
                "credential_in_uri",
                "the URI carries a user name or password (user:password@host), which would be written into "
                "plan.json and the reports",
                {"field": "uri"},
            )
        return data

    @model_validator(mode="after")
    def _keys_of_the_backend(self) -> Tracking:
        reads = KEYS[self.backend]
        defaults = {name: f.default for name, f in type(self).model_fields.items()}
        for name in ("dir", "uri", "experiment", "project", "entity", "mode"):
            if name not in reads and getattr(self, name) != defaults[name]:
                users = [b for b, keys in KEYS.items() if name in keys]
                raise PydanticCustomError(
                    "tracking_key",
                    "read by tracking={users} only, and this is tracking={backend}",
                    {"field": name, "key": name, "users": "|".join(users), "backend": self.backend, "first": users[0]},
                )
        return self


class TrackingPlan(Frozen):
    """Tracking as the runtime reads it from plan.json: the backend, the run's name and every location resolved."""

    backend: Literal["tensorboard", "mlflow", "wandb"]
    run_name: str = Field(description="The bundle's name (<goal>-<plan id>): the run every stage logs to.")
    report_to: str = Field(description="The transformers integration (report_to) that logs the training steps.")
    dir: str = Field(
        description="Where the backend writes: relative to the bundle (the default, run/tracking/<backend>) or "
        "an absolute path."
    )
    uri: str | None = Field(
        None, description="mlflow: the tracking URI; null: SQLite in dir (sqlite:///<dir>/mlflow.db)."
    )
    experiment: str | None = Field(None, description="mlflow: the experiment.")
    project: str | None = Field(None, description="wandb: the project.")
    entity: str | None = Field(None, description="wandb: the entity; null: the API key's default.")
    mode: Literal["offline", "online"] | None = Field(None, description="wandb: offline or online.")
    packages: dict[str, str] = Field(
        default_factory=dict,
        description="What the stages import to log: import name -> the distribution to install.",
    )
