"""A real tiny-llama bundle on the local Slurm cluster (.ci/slurm-up.sh), every stage the real runtime:
launch/submit.sh records its jobs in launch/jobs.json; python -m planner.status shows each stage's Slurm state
beside its status.json; the time-limit warning (SIGUSR1, what `#SBATCH --signal` sends) makes the train stage
save a checkpoint, requeue itself and resume from that checkpoint; python -m planner.cancel cancels the chain.

Accounting is off on the local cluster (no sacct): planner.status falls back to squeue and scontrol.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner.bundle import write_bundle
from planner.render import render
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=ENV)


def _job_state(job: str) -> str:
    shown = _run("scontrol", "show", "job", "-o", job)
    found = re.search(r"\bJobState=(\S+)", shown.stdout)
    return found.group(1) if found else "GONE"


def _status(bundle: Path, stage: str = "train") -> dict:
    try:
        return json.loads((bundle / "run" / stage / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait(what: str, check, timeout: float, bundle: Path, job: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-2000:] for p in sorted((bundle / "logs").glob(f"train-{job}.out")))
            pytest.fail(f"{what}: not within {timeout:.0f}s; job {job} {_job_state(job)}; status {_status(bundle)}\n"
                        f"{logs}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def tiny_model():
    from runtime import tiny

    return tiny.build(progress=False)


def test_status_requeue_at_the_time_limit_and_cancel(slurm_cluster, tiny_model, tmp_path):
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "launcher=slurm", "method=lora",
                     "method.max_steps=400", "method.val_check_interval=0.05", f"launcher.python={sys.executable}")
    bundle = write_bundle(render(plan, "# report\n"), tmp_path / "runs", plan.name)
    submitted = _run("bash", str(bundle / "launch" / "submit.sh"), cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    printed = dict(line.split(" ", 1) for line in submitted.stdout.splitlines())
    jobs = json.loads((bundle / "launch" / "jobs.json").read_text())
    try:
        assert jobs["launcher"] == "slurm" and jobs["plan_id"] == plan.id
        assert {stage: j["job_id"] for stage, j in jobs["jobs"].items()} == printed
        assert list(jobs["jobs"]) == [s.name for s in plan.stages]
        train = printed["train"]
        # a second submission while the jobs are queued or running is refused, and submits nothing
        twice = _run("bash", str(bundle / "launch" / "submit.sh"), cwd=tmp_path)
        assert twice.returncode == 75 and "still queued or running in Slurm" in twice.stderr, twice.stderr
        assert json.loads((bundle / "launch" / "jobs.json").read_text()) == jobs
        checkpoints = bundle / "run/train/checkpoints"
        _wait("a first checkpoint", lambda: any(checkpoints.glob("checkpoint-*/trainer_state.json")), 300, bundle,
              train)

        shown = _run(sys.executable, "-m", "planner.status", str(bundle))
        assert shown.returncode == 0, shown.stderr
        row = next(line for line in shown.stdout.splitlines() if line.startswith("train "))
        assert train in row and "RUNNING" in row and "running" in row, shown.stdout
        assert re.search(r"\d+/400 \(\d+%\)", row), row
        later = next(line for line in shown.stdout.splitlines() if line.startswith("publish "))
        assert "PENDING" in later and "not started" in later, later

        # What `#SBATCH --signal=USR1@<lead>` sends at the time limit, to the job step's processes.
        signalled = _run("scancel", "--signal=USR1", train)
        assert signalled.returncode == 0, signalled.stderr
        _wait("status requeued", lambda: _status(bundle).get("state") == "requeued", 120, bundle, train)
        stopped_at = _status(bundle)["steps_completed"]
        assert _status(bundle)["requeue_for"] == f"{train}/0"
        _wait("the requeued job to resume", lambda: _status(bundle).get("attempts", 0) >= 2
              and bool(_status(bundle).get("resumed_from")), 300, bundle, train)  # Slurm holds a requeue ~2 min
        resumed = _status(bundle)
        assert resumed["resumed_from"].endswith(f"checkpoint-{stopped_at}"), resumed
        assert (bundle / "run/train/requeued").read_text().split() == [train]
        log = (bundle / "logs" / f"train-{train}.out").read_text()
        assert "requeueing job" in log and f"resumed from checkpoint-{stopped_at}" in log

        cancelled = _run(sys.executable, "-m", "planner.cancel", str(bundle))
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"cancelled train: job {train}" in cancelled.stdout, cancelled.stdout
        for stage in ("eval", "gate", "publish"):
            assert f"cancelled {stage}: job {printed[stage]}" in cancelled.stdout, cancelled.stdout
        deadline = time.monotonic() + 120
        while any(_job_state(j) not in {"CANCELLED", "COMPLETED", "GONE"} for j in printed.values()):
            assert time.monotonic() < deadline, {s: _job_state(j) for s, j in printed.items()}
            time.sleep(0.5)
        assert _job_state(train) in {"CANCELLED", "GONE"}
        # scancel is SIGTERM: the stage saves and ends cancelled, and is not requeued
        _wait("status cancelled", lambda: _status(bundle).get("state") == "cancelled", 60, bundle, train)
        after = _run(sys.executable, "-m", "planner.status", str(bundle))
        assert after.returncode == 0 and "CANCELLED" in after.stdout, after.stdout
        again = _run(sys.executable, "-m", "planner.cancel", str(bundle))
        assert again.returncode == 0 and again.stdout.startswith("nothing to cancel"), again.stdout
    finally:
        _run("scancel", *printed.values())
