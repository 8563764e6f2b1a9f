"""Faults on the local Slurm cluster (.ci/slurm-up.sh): `scontrol requeue` of a running train job (what an admin,
a preemption or a node failure does) stops the stage with a checkpoint; Slurm starts the job again, the stage
resumes from its last complete checkpoint, and the rest of the chain (eval, gate, publish, waiting on the train
job with afterok) completes.

Slurm holds a requeued job until a BeginTime about two minutes on; the test moves it to now
(`scontrol update jobid=<id> starttime=now`), as an operator in a hurry would, so it takes about a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner.bundle import write_bundle
from planner.render import render
from tests.integration.test_slurm_status import ENV, _job_state, _run, _status, _wait
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_model():
    from runtime import tiny

    return tiny.build(progress=False)


def _complete_checkpoints(bundle: Path) -> list[int]:
    found = []
    for path in (bundle / "run/train/checkpoints").glob("checkpoint-*"):
        try:
            state = json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        found.append(int(state["global_step"]))
    return sorted(found)


def test_scontrol_requeue_of_a_running_train_job_resumes_from_its_checkpoint(slurm_cluster, tiny_model, tmp_path):
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "launcher=slurm", "method=lora",
                     "method.max_steps=40", "method.val_check_interval=0.05", "method.warmup_steps=1",
                     "eval.max_examples=4", "eval.max_new_tokens=12", "goal.target_score=0.0",
                     "eval.forgetting_threshold=100", f"launcher.python={sys.executable}")
    bundle = write_bundle(render(plan, "# report\n"), tmp_path / "runs", plan.name)
    submitted = _run("bash", str(bundle / "launch" / "submit.sh"), cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    jobs = dict(line.split(" ", 1) for line in submitted.stdout.splitlines())
    train = jobs["train"]
    try:
        _wait("a first checkpoint", lambda: bool(_complete_checkpoints(bundle)), 300, bundle, train)
        requeued = _run("scontrol", "requeue", train)
        assert requeued.returncode == 0, requeued.stderr
        _wait("the train stage to stop", lambda: _status(bundle).get("state") not in (None, "running"), 120, bundle,
              train)
        stopped = _status(bundle)
        last = _complete_checkpoints(bundle)[-1]
        assert stopped["steps_completed"] == last < 40, stopped  # SIGTERM: a checkpoint at the step it stopped
        # Slurm holds the requeued job (BeginTime ~2 min on): start it now
        deadline = time.monotonic() + 120
        while _job_state(train) not in {"PENDING", "RUNNING"}:
            assert time.monotonic() < deadline, _job_state(train)
            time.sleep(0.5)
        moved = _run("scontrol", "update", f"jobid={train}", "starttime=now")
        assert moved.returncode == 0 or _job_state(train) == "RUNNING", moved.stderr
        _wait("the requeued job to resume", lambda: (_status(bundle).get("attempts") or 0) > stopped["attempts"]
              and bool(_status(bundle).get("resumed_from")), 180, bundle, train)
        assert _status(bundle)["resumed_from"] == f"checkpoint-{last}"
        _wait("the chain to complete", lambda: _status(bundle, "publish").get("state") == "completed", 300, bundle,
              train)
        done = _status(bundle)
        assert done["state"] == "completed" and done["steps_completed"] == 40 and done["resumed_from"] == \
            f"checkpoint-{last}"
        for stage in jobs:
            assert _status(bundle, stage).get("state") == "completed", (stage, _status(bundle, stage))
        log = (bundle / "logs" / f"train-{train}.out").read_text()
        assert f"resumed from checkpoint-{last}" in log
    finally:
        subprocess.run(["scancel", *jobs.values()], capture_output=True, timeout=60, check=False, env=ENV)
