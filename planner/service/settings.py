"""Where the service keeps its state, and how it is reached: one frozen Settings, read from the command line and
the environment once, at start.

The data folder is $LADDER_HOME, else $XDG_DATA_HOME/ladder, else ~/.local/share/ladder. It holds jobs.db (the
SQLite store, unless DATABASE_URL names another database) and jobs/<job id>/ (each job's bundle, its log and
its exit code).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

LOCALHOST = ("127.0.0.1", "::1", "localhost")


def data_dir(env: dict[str, str] | None = None) -> Path:
    """The service's data folder: $LADDER_HOME, $XDG_DATA_HOME/ladder, or ~/.local/share/ladder."""
    env = dict(os.environ) if env is None else env
    if env.get("LADDER_HOME"):
        return Path(env["LADDER_HOME"]).expanduser()
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]).expanduser() / "ladder"
    return Path("~/.local/share/ladder").expanduser()


def database_url(url: str | None, folder: Path) -> str:
    """The SQLAlchemy URL of the store: DATABASE_URL with PostgreSQL through psycopg 3 (`postgresql://` and
    `postgres://` become `postgresql+psycopg://`), else SQLite at <data folder>/jobs.db."""
    if not url:
        return f"sqlite:///{folder / 'jobs.db'}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


@dataclass(frozen=True)
class Settings:
    """What one server runs with."""

    datasets_root: Path
    data_dir: Path
    database_url: str
    inventory: str = "local"
    launcher: str = "auto"  # auto: slurm for an inventory with a scheduler, else local (or torchrun)
    token: str | None = field(default=None, repr=False)
    poll_seconds: float = 1.0
    max_running: int | None = None  # None: from the inventory (GPUs in it)

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @classmethod
    def from_env(
        cls, datasets_root: str | Path = "datasets", inventory: str = "local", launcher: str = "auto", **kw: object
    ) -> Settings:
        folder = data_dir()
        return cls(
            datasets_root=Path(datasets_root).expanduser().resolve(),
            data_dir=folder,
            database_url=database_url(os.environ.get("DATABASE_URL"), folder),
            inventory=inventory,
            launcher=launcher,
            token=os.environ.get("LADDER_API_TOKEN") or None,
            **kw,  # type: ignore[arg-type]
        )
