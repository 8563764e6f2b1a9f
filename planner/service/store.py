"""The job store: two tables behind SQLAlchemy 2 (SQLite by default, PostgreSQL through psycopg 3), created and
upgraded by the Alembic migrations shipped in planner/service/migrations, run when the store opens.

`jobs` holds one row per job: the request, what the plan decided (plan id, estimate, bundle), the executor's
handle on the running process, and the status the service last derived; `job_events` is the status log
(Customizer's status_logs), one row per change. Rows are plain dicts to the callers. Timestamps are naive UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
metadata = sa.MetaData()
# The tables as the latest migration leaves them (the migrations create them; this is what the queries use).
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(128), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("started_at", sa.DateTime(), nullable=True),
    sa.Column("finished_at", sa.DateTime(), nullable=True, index=True),
    sa.Column("config", sa.String(256), nullable=False),
    sa.Column("output_model", sa.String(512), nullable=False),
    sa.Column("plan_id", sa.String(32), nullable=False),
    sa.Column("bundle", sa.Text(), nullable=False),
    sa.Column("executor", sa.String(32), nullable=False),
    sa.Column("gpus", sa.Integer(), nullable=False),
    sa.Column("handle", sa.JSON(), nullable=True),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False, default=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("request", sa.JSON(), nullable=False),
    sa.Column("summary", sa.JSON(), nullable=False),
)
job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("message", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text(), nullable=True),
)
OPEN = sa.and_(jobs.c.finished_at.is_(None))


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:  # WAL: readers never wait for the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the database to the latest migration (Alembic's upgrade head)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = engine_for(url)
        migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def insert(self, row: dict[str, Any], message: str, detail: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(jobs.insert().values(**row))
            conn.execute(
                job_events.insert().values(job_id=row["id"], at=row["created_at"], message=message, detail=detail)
            )

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return dict(row) if row else None

    def update(
        self,
        job_id: str,
        fields: dict[str, Any],
        event: tuple[str, str | None] | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        """Set fields (updated_at too) and append an event (message, detail), in one transaction."""
        at = at or now()
        with self._tx() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**fields, updated_at=at))
            if event is not None:
                conn.execute(job_events.insert().values(job_id=job_id, at=at, message=event[0], detail=event[1]))

    def events(self, job_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    def open_jobs(self) -> list[dict[str, Any]]:
        """Jobs whose run has not ended (or not started), oldest first: the ones to watch and to start."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs).where(OPEN).order_by(jobs.c.created_at, jobs.c.id)).mappings()
            return [dict(r) for r in rows]

    def page(
        self, filters: dict[str, str], page: int, page_size: int, newest_first: bool = True
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of jobs matching equality filters on stored columns (status, namespace, config, plan_id), and
        the count of all that match."""
        where = [jobs.c[key] == value for key, value in filters.items() if key in jobs.c]
        order = (jobs.c.created_at.desc(), jobs.c.id.desc()) if newest_first else (jobs.c.created_at, jobs.c.id)
        with self.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(*where)).scalar_one()
            rows = conn.execute(
                sa.select(jobs).where(*where).order_by(*order).limit(page_size).offset((page - 1) * page_size)
            ).mappings()
            return [dict(r) for r in rows], int(total)


__all__ = ["Store", "engine_for", "job_events", "jobs", "migrate", "now"]
