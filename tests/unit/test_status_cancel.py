"""python -m planner.status and planner.cancel on bundles that are not running: never launched, launched and
ended, and paths that are not bundles. (A running local bundle: tests/runtime/test_cancel_local.py; a Slurm
chain: tests/integration/test_slurm_status.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planner.bundle import write_bundle
from planner.render import render
from tests.unit.helpers import make_plan

ROOT = Path(__file__).resolve().parents[2]
REPORT = "# report\n"


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


@pytest.fixture(params=["local", "torchrun", "slurm"])
def idle(request, tmp_path) -> Path:
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", f"launcher={request.param}")
    return write_bundle(render(plan, REPORT), tmp_path, plan.name)


def test_an_idle_bundle_lists_its_stages_as_not_started(idle):
    result = _cli("planner.status", str(idle))
    assert result.returncode == 0, result.stderr
    plan = json.loads((idle / "plan.json").read_text())
    assert "never launched" in result.stdout
    for stage in plan["stages"]:
        assert any(line.startswith(stage["name"] + " ") and "not started" in line
                   for line in result.stdout.splitlines()), (stage["name"], result.stdout)
    rows = json.loads(_cli("planner.status", str(idle / "plan.json"), "--json").stdout)
    assert [r["stage"] for r in rows] == [s["name"] for s in plan["stages"]]
    assert {r["state"] for r in rows} == {"not started"}


def test_an_idle_bundle_has_nothing_to_cancel(idle):
    result = _cli("planner.cancel", str(idle))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("nothing to cancel:"), result.stdout


@pytest.mark.parametrize("module", ["planner.status", "planner.cancel"])
def test_a_path_that_is_not_a_bundle_is_a_clear_error(module, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "plan.json").write_text('{"id": "x"}')
    for path, says in ((tmp_path / "missing", "is not a folder"), (tmp_path / "empty", "no plan.json"),
                       (tmp_path / "bad", "is not a readable plan")):
        result = _cli(module, str(path))
        assert result.returncode == 2, (path, result.stdout, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_local_run_that_ended_shows_its_status_and_has_nothing_to_cancel(tmp_path):
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local")
    bundle = write_bundle(render(plan, REPORT), tmp_path, plan.name)
    (bundle / "launch/jobs.json").write_text(json.dumps(
        {"host": os.uname().nodename, "launcher": "local", "pid": 2**22 + 7, "plan_id": plan.id,
         "started_at": "2026-01-01T00:00:00Z"}))
    status = bundle / "run/train/status.json"
    status.parent.mkdir(parents=True)
    status.write_text(json.dumps({"plan_id": plan.id, "stage": "train", "state": "cancelled", "steps_completed": 12,
                                  "total_steps": 50, "train_loss": 1.5, "val_loss": 1.75,
                                  "peak_memory_bytes": 812_000_000, "error": "SIGTERM: checkpoint saved at step 12"}))
    result = _cli("planner.status", str(bundle))
    assert result.returncode == 0, result.stderr
    train = next(line for line in result.stdout.splitlines() if line.startswith("train "))
    for cell in ("exited", "cancelled", "12/50 (24%)", "1.5000", "1.7500", "0.81 GB"):
        assert cell in train, (cell, train)
    assert "train: SIGTERM: checkpoint saved at step 12" in result.stdout
    cancel = _cli("planner.cancel", str(bundle))
    assert cancel.returncode == 0 and "has ended" in cancel.stdout, cancel.stdout + cancel.stderr


def test_a_recorded_pid_that_is_not_the_bundles_script_is_never_signalled(tmp_path):
    """A pid reused by another process (here: a sleep in another folder) is not the run: cancel leaves it alone."""
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local")
    bundle = write_bundle(render(plan, REPORT), tmp_path, plan.name)
    other = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        (bundle / "launch/jobs.json").write_text(json.dumps(
            {"host": os.uname().nodename, "launcher": "local", "pid": other.pid, "plan_id": plan.id}))
        result = _cli("planner.cancel", str(bundle))
        assert result.returncode == 0 and "has ended" in result.stdout, result.stdout
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_replanning_keeps_the_recorded_jobs(tmp_path):
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "launcher=slurm")
    bundle = write_bundle(render(plan, REPORT), tmp_path, plan.name)
    jobs = '{"launcher": "slurm", "jobs": {"train": {"job_id": "41"}}}\n'
    (bundle / "launch/jobs.json").write_text(jobs)
    write_bundle(render(plan, REPORT), tmp_path, plan.name)
    assert (bundle / "launch/jobs.json").read_text() == jobs
    assert (bundle / "launch/submit.sh").is_file()
