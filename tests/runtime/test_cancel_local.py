"""python -m planner.status and planner.cancel on a local bundle that runs for real (tiny-llama on CPU): the run
script records its pid in launch/jobs.json; status shows the running stage's progress; cancel sends SIGTERM to
the script, which passes it to the stage: a checkpoint, `cancelled`, and no later stage starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner.bundle import write_bundle
from planner.render import render
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _cli(module: str, bundle: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, str(bundle)], capture_output=True, text=True, env=ENV,
                          timeout=60, check=False)


def test_cancel_stops_a_running_local_bundle_after_a_checkpoint(tmp_path, tiny_dir):
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "method=lora", "method.max_steps=400",
                     "method.val_check_interval=0.05", f"launcher.python={sys.executable}")
    bundle = write_bundle(render(plan, "# report\n"), tmp_path, plan.name)
    proc = subprocess.Popen(["bash", str(bundle / "launch/run_local.sh")], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        checkpoints = bundle / "run/train/checkpoints"
        deadline = time.monotonic() + 300
        while not any(checkpoints.glob("checkpoint-*/trainer_state.json")):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"no checkpoint (rc {proc.poll()}):\n{proc.communicate()[0][-3000:]}")
            time.sleep(0.1)
        jobs = json.loads((bundle / "launch/jobs.json").read_text())
        assert jobs["pid"] == proc.pid and jobs["launcher"] == "local" and jobs["plan_id"] == plan.id

        shown = _cli("planner.status", bundle)
        assert shown.returncode == 0, shown.stderr
        rows = {line.split()[0]: line for line in shown.stdout.splitlines()[3:] if line.strip()}
        assert "running" in rows["train"] and "/400 (" in rows["train"], shown.stdout
        assert "completed" in rows["validate_data"] and "not started" in rows["eval"], shown.stdout

        cancel = _cli("planner.cancel", bundle)
        assert cancel.returncode == 0 and f"pid {proc.pid}" in cancel.stdout, cancel.stdout + cancel.stderr
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, out[-3000:]
    status = json.loads((bundle / "run/train/status.json").read_text())
    assert status["state"] == "cancelled", status
    step = status["steps_completed"]
    assert 0 < step < 400 and (checkpoints / f"checkpoint-{step}/trainer_state.json").is_file()
    assert "==> stage train failed (exit 143)" in out
    assert not (bundle / "run/eval").exists()  # no later stage started
    again = _cli("planner.cancel", bundle)
    assert again.returncode == 0 and "has ended" in again.stdout, again.stdout
