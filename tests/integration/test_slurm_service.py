"""The job service's Slurm executor on the real local cluster (.ci/slurm-up.sh): `python -m planner.serve
--launcher slurm` submits each job's compiled launch/submit.sh (one sbatch job per stage, afterok), follows the
jobs through Slurm and the stages' status files, cancels with scancel, and finds its jobs again after a restart.

The jobs are Customizer's tutorial body cut to one short epoch (the tiny model on CPU), so the run takes about a
minute: a first job is cancelled while its first stages are queued or running, the second trains to completed
across a server restart. Stages a test leaves behind (eval, gate, publish after completed) are scancelled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import SAMPLES, Server, kill_runs, tutorial_body

pytestmark = pytest.mark.integration
API = "/v1/customization"
SHORT = {"epochs": 1, "batch_size": 32, "warmup_steps": 0}  # 13 optimizer steps: the executor is under test


def slurm_state(job: str) -> str:
    shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=False)
    fields = dict(part.split("=", 1) for part in shown.stdout.split() if "=" in part)
    return fields.get("JobState", "GONE")


def submitted(home: Path) -> dict[str, str]:
    """stage -> Slurm job id, for every job of every bundle under the server's data folder (launch/jobs.json)."""
    out = {}
    for recorded in home.glob("jobs/*/*/launch/jobs.json"):
        jobs = json.loads(recorded.read_text())["jobs"]
        out.update({f"{recorded.parts[-4]}:{stage}": str(v["job_id"]) for stage, v in jobs.items()})
    return out


@pytest.fixture
def slurm_server(tmp_path: Path, slurm_cluster: list[str]) -> Iterator[Server]:
    datasets = tmp_path / "datasets"
    shutil.copytree(SAMPLES / "tone", datasets / "default" / "email-assist")
    srv = Server(tmp_path / "home", datasets, "--launcher", "slurm")
    srv.start()
    yield srv
    srv.stop()
    left = list(submitted(tmp_path / "home").values())
    if left:
        subprocess.run(["scancel", *left], capture_output=True, check=False)
    kill_runs(tmp_path / "home")


def wait_for(client, job_id: str, want: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"{API}/jobs/{job_id}/status").json()
        if status["status"] in want:
            return status
        assert status["status"] not in {"failed", "cancelled"} - want, status
        assert time.monotonic() < deadline, f"job {job_id} is {status['status']}, not {want}: {status}"
        time.sleep(0.5)


def test_slurm_jobs_are_submitted_followed_cancelled_and_found_again_after_a_restart(slurm_server: Server):
    home = slurm_server.home
    with slurm_server.client() as c:
        first = c.post(f"{API}/jobs", json=tutorial_body(**SHORT))
        assert first.status_code == 200, first.text
        first_id = first.json()["id"]
        running = wait_for(c, first_id, {"running"}, timeout=30)
        logs = running["status_logs"]
        # submitted: pending in Slurm's queue until its first job runs
        assert [e["message"] for e in logs[:3]] == ["created", "pending", "running"], logs
        started = logs[1]["detail"]
        assert started.startswith("submitted") and "Slurm jobs" in started and "(train)" in started, started
        assert "Slurm job" in logs[2]["detail"], logs
        ids = {k.split(":")[1]: v for k, v in submitted(home).items() if k.startswith(first_id)}
        assert set(ids) == {"validate_data", "baseline_eval", "train", "eval", "gate", "publish"}
        assert all(slurm_state(job) in ("PENDING", "RUNNING", "COMPLETED") for job in ids.values())

        cancelling = c.post(f"{API}/jobs/{first_id}/cancel")
        assert cancelling.status_code == 200 and cancelling.json()["status"] in ("cancelling", "cancelled")
        cancelled = wait_for(c, first_id, {"cancelled"}, timeout=60)
        assert "cancelled" in cancelled["status_logs"][-1]["message"]
        assert {slurm_state(job) for job in ids.values()} <= {"CANCELLED", "COMPLETED", "GONE"}
        assert slurm_state(ids["train"]) in ("CANCELLED", "GONE")

        second = c.post(f"{API}/jobs", json=tutorial_body(**SHORT)).json()
        wait_for(c, second["id"], {"running"}, timeout=60)
    slurm_server.restart()  # the Slurm jobs go on; the new server follows the same job ids
    with slurm_server.client() as c:
        done = wait_for(c, second["id"], {"completed"}, timeout=240)
        assert done["epochs_completed"] == 1 and done["steps_completed"] == 13 and done["val_loss"] is not None
        logs = [(e["message"], e["detail"] or "") for e in done["status_logs"]]
        assert any("server restarted" in d and "Slurm jobs" in d for _, d in logs), logs
        assert logs[-1][0] == "completed"
    ids = {k.split(":")[1]: v for k, v in submitted(home).items() if k.startswith(second["id"])}
    deadline = time.monotonic() + 30  # the stage wrote its status; its process is exiting
    while slurm_state(ids["train"]) not in ("COMPLETED", "GONE"):
        assert time.monotonic() < deadline, slurm_state(ids["train"])
        time.sleep(0.5)
    assert (Path(second["bundle"]) / "run" / "train" / "adapter" / "adapter_config.json").is_file()
