"""The job service under test: a real `python -m planner.serve` (uvicorn) on a free port, in a data folder of its
own, driven over HTTP with httpx. `Server` starts, stops and restarts it (the same port, folder and database),
so a test can restart it in the middle of a job. A test that takes `database` runs against SQLite and against
the PostgreSQL server TEST_DATABASE_URL names (.ci/run starts one in CI).

Nothing here imports torch; the tests that load the trained adapter are marked runtime.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the job service's tests need the service extra")
pytest.importorskip("fastapi", reason="the job service's tests need the service extra")

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "conf" / "samples"
TINY_URN = "local/tiny-llama@v1.0.0+CPU"


def tutorial_body(config: str = TINY_URN, dataset: str = "email-assist", **hyper: object) -> dict:
    """Customizer's tutorial body (SFT LoRA, 2 epochs), with the tiny-llama config and a shipped dataset."""
    hp = {
        "training_type": "sft",
        "finetuning_type": "lora",
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 0.0001,
        "lora": {"adapter_dim": 8, "adapter_dropout": 0.1},
        **hyper,
    }
    return {"config": config, "dataset": {"name": dataset, "namespace": "default"}, "hyperparameters": hp}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, home: Path, datasets: Path, *args: str, env: dict[str, str] | None = None):
        self.home, self.datasets, self.args = home, datasets, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LADDER_API_TOKEN", "DATABASE_URL"))}
        self.env.update({"LADDER_HOME": str(home), "PYTHONUNBUFFERED": "1", **(env or {})})
        self.log = home / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "planner.serve",
                    "--port",
                    str(self.port),
                    "--datasets-root",
                    str(self.datasets),
                    *self.args,
                ],
                cwd=self.home,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                httpx.get(self.url + "/v1/customization/configs", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"the server did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    """A datasets root: default/email-assist (the tone sample, training/ and validation/), and default/flat, whose
    file sits in the dataset root (Customizer's empty dataset)."""
    root = tmp_path / "datasets"
    shutil.copytree(SAMPLES / "tone", root / "default" / "email-assist")
    (root / "default" / "flat").mkdir(parents=True)
    shutil.copy(SAMPLES / "tone" / "training" / "tone.jsonl", root / "default" / "flat" / "tone.jsonl")
    return root


NO_POSTGRES = (
    "TEST_DATABASE_URL is not set: start PostgreSQL with `sudo .ci/postgres-up.sh` and export the URL it prints "
    "as TEST_DATABASE_URL"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The server's store; every test that takes it runs once per database. sqlite: the server's default, a file
    in its data folder ({}). postgresql: a fresh database of its own on the server TEST_DATABASE_URL names (one the
    tests may create databases on), dropped afterwards. Without TEST_DATABASE_URL the PostgreSQL runs skip, except
    in CI (CI=true; .ci/run starts PostgreSQL and sets it), where a missing database fails them."""
    if request.param == "sqlite":
        yield {}
        return
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}:
            pytest.fail(f"CI runs the job service's store tests against PostgreSQL too: {NO_POSTGRES}")
        pytest.skip(NO_POSTGRES)
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"ladder_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield {"DATABASE_URL": admin.set(database=name).render_as_string(hide_password=False)}
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server(tmp_path: Path, datasets: Path, database: dict[str, str]) -> Iterator[Server]:
    srv = Server(tmp_path / "home", datasets, env=database)
    srv.start()
    yield srv
    srv.stop()
    kill_runs(tmp_path / "home")


def kill_runs(home: Path) -> None:
    """End the runs a test's jobs left (their process groups), so no training outlives the test."""
    for pid_file in (home / "jobs").glob("*/pid"):
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
