"""The local Slurm cluster (.ci/slurm-up.sh) runs batch jobs and honours dependencies.

Accounting is off (AccountingStorageType=accounting_storage/none), so there is no sacct:
job states come from ``scontrol show job``, which forgets a job MinJobAge (300 s) after it ends.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TERMINAL = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}
GONE = "GONE"  # scontrol no longer knows the job (purged after MinJobAge)


def _run(*args: str, timeout: float = 30) -> str:
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited {proc.returncode}\n"
        f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    )
    return proc.stdout


def _write_job(path: Path, name: str, output: Path, body: str) -> Path:
    path.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name={name}\n"
        "#SBATCH --nodes=1\n"
        "#SBATCH --ntasks-per-node=1\n"
        f"#SBATCH --output={output}\n"
        "#SBATCH --time=00:02:00\n"
        "set -euo pipefail\n"
        f"{body}\n"
    )
    return path


def _sbatch(script: Path, *options: str) -> str:
    out = _run("sbatch", "--parsable", *options, str(script)).strip()
    job_id = out.split(";")[0]  # --parsable prints "id" or "id;cluster"
    assert job_id.isdigit(), f"unexpected sbatch output: {out!r}"
    return job_id


def _job_info(job_id: str) -> dict[str, str]:
    """JobState/Reason/ExitCode/... of a job, or {"JobState": GONE} once it is purged."""
    proc = subprocess.run(
        ["scontrol", "show", "job", job_id],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr + proc.stdout:
            return {"JobState": GONE}
        raise AssertionError(f"scontrol show job {job_id} failed: {proc.stderr}")
    return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))


def _wait_for(job_id: str, states: set[str], timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        info = _job_info(job_id)
        if info["JobState"] in states:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {job_id} still {info['JobState']} after {timeout:.0f}s "
                f"(waiting for {sorted(states)}): {info}"
            )
        time.sleep(0.5)


def test_batch_job_runs_and_writes_output(slurm_cluster, tmp_path: Path) -> None:
    out = tmp_path / "hello.out"
    script = _write_job(
        tmp_path / "hello.sbatch",
        "ladder-it-hello",
        out,
        'echo "hello from job $SLURM_JOB_ID ($SLURM_JOB_NAME) on $(hostname)"',
    )

    job_id = _sbatch(script)
    info = _wait_for(job_id, TERMINAL | {GONE})

    assert info["JobState"] in {"COMPLETED", GONE}, info
    if info["JobState"] == "COMPLETED":
        assert info.get("ExitCode") == "0:0", info
    expected = f"hello from job {job_id} (ladder-it-hello) on {socket.gethostname()}\n"
    assert out.read_text() == expected


def test_afterok_dependency_on_failed_job_is_cancelled(
    slurm_cluster, tmp_path: Path
) -> None:
    first_out = tmp_path / "first.out"
    second_out = tmp_path / "second.out"
    first = _write_job(
        tmp_path / "first.sbatch", "ladder-it-first", first_out, "echo first; exit 1"
    )
    second = _write_job(
        tmp_path / "second.sbatch", "ladder-it-second", second_out, "echo second"
    )

    # Hold the first job until the second is queued, so it cannot finish (and be
    # forgotten) before the dependency exists.  Note: Slurm 22.05 silently drops an
    # afterok on a job id it does not know (never existed, or purged after MinJobAge)
    # and runs the dependent job.
    first_id = _sbatch(first, "--hold")
    second_id = _sbatch(
        second, f"--dependency=afterok:{first_id}", "--kill-on-invalid-dep=yes"
    )
    try:
        pending = _job_info(second_id)
        assert pending["JobState"] == "PENDING", pending
        assert pending["Reason"] == "Dependency", pending
        _run("scontrol", "release", first_id)

        first_info = _wait_for(first_id, TERMINAL | {GONE})
        assert first_info["JobState"] in {"FAILED", GONE}, first_info
        if first_info["JobState"] == "FAILED":
            assert first_info["ExitCode"] == "1:0", first_info
        assert first_out.read_text() == "first\n"

        # Seen on Slurm 22.05: within a few seconds (next scheduling pass) the dependent
        # job goes PENDING/Dependency -> CANCELLED/DependencyNeverSatisfied.
        second_info = _wait_for(second_id, TERMINAL | {GONE})
        assert second_info["JobState"] in {"CANCELLED", GONE}, second_info
        if second_info["JobState"] == "CANCELLED":
            assert second_info["Reason"] == "DependencyNeverSatisfied", second_info
            assert second_info["Dependency"] == f"afterok:{first_id}(failed)"
        # It never ran: no output. (Not RunTime: Slurm 22.05 sometimes reports a job cancelled while pending
        # with a RunTime counted from the epoch, e.g. 20785-20:57:31, instead of 00:00:00.)
        assert not second_out.exists(), second_out.read_text()
    finally:
        subprocess.run(
            ["scancel", first_id, second_id], capture_output=True, timeout=30, check=False
        )
