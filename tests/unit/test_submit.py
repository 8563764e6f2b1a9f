"""launch/submit.sh refuses a second submission while the bundle's jobs are still queued or running (exit 75, as a
second local launch does), and submits again once they have ended. Slurm's sbatch and squeue are stand-ins here,
scripts on PATH that hand out job ids and list the live ones; tests/integration/test_slurm_status.py submits twice to
the real cluster."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from planner.bundle import write_bundle
from planner.render import render
from tests.unit.helpers import make_plan

SBATCH = """#!/usr/bin/env bash
n=$(( $(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100) + 1 ))
echo "$n" >"$FAKE_SLURM/next"
echo "$n"
"""
# squeue -h -j <ids> -o %i: the ids among <ids> listed in $FAKE_SLURM/live
SQUEUE = """#!/usr/bin/env bash
while [[ $# -gt 0 ]]; do [[ $1 == -j ]] && ids=$2; shift; done
tr ',' '\\n' <<<"$ids" | grep -Fxf "$FAKE_SLURM/live" || true
"""


@pytest.fixture()
def slurm(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "fake-slurm"
    fake.mkdir()
    for name, body in (("sbatch", SBATCH), ("squeue", SQUEUE), ("scancel", "#!/usr/bin/env bash\n")):
        (fake / name).write_text(body)
        (fake / name).chmod(0o755)
    (fake / "live").write_text("")
    return {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "FAKE_SLURM": str(fake)}


def _submit(bundle: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(bundle / "launch/submit.sh")], capture_output=True, text=True, env=env, timeout=60)


def _jobs(bundle: Path) -> dict[str, str]:
    return {s: j["job_id"] for s, j in json.loads((bundle / "launch/jobs.json").read_text())["jobs"].items()}


def test_a_second_submission_is_refused_while_jobs_live_and_allowed_after(slurm, tmp_path):
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "launcher=slurm", "method=lora")
    bundle = write_bundle(render(plan, "# report\n"), tmp_path / "runs", plan.name)
    first = _submit(bundle, slurm)
    assert first.returncode == 0, first.stderr
    jobs = _jobs(bundle)
    assert list(jobs) == [s.name for s in plan.stages]

    (Path(slurm["FAKE_SLURM"]) / "live").write_text(f"{jobs['train']}\n{jobs['publish']}\n")  # queued or running
    again = _submit(bundle, slurm)
    assert again.returncode == 75
    assert f"jobs {jobs['train']} {jobs['publish']} of this bundle are still queued or running" in again.stderr
    assert f"python -m planner.cancel {bundle.resolve()}" in again.stderr
    assert again.stdout == "" and _jobs(bundle) == jobs  # nothing submitted, the record untouched

    (Path(slurm["FAKE_SLURM"]) / "live").write_text("")  # every job ended (completed, failed or cancelled)
    third = _submit(bundle, slurm)
    assert third.returncode == 0, third.stderr
    assert set(_jobs(bundle).values()).isdisjoint(jobs.values())
