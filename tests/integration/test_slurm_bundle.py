"""Compiled Slurm bundles on the real local cluster (.ci/slurm-up.sh).

* `sbatch --test-only` accepts every single-node script compiled from the shipped goals.
* launch/submit.sh submits a whole bundle: validate_data runs the real runtime; the other stages
  run a fake `python` (launcher.python) that records its argv, so every stage runs under Slurm in
  DAG order, in seconds; a forced failure in `train` cancels every stage after it.

Accounting is off on the local cluster (no sacct): job states come from `scontrol show job`.
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
from planner.paths import conf_dir
from planner.render import render
from tests.fakes import fake_python, stages_run
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.integration

GOALS = sorted(p.stem for p in (conf_dir() / "goal").glob("*.yaml"))
TERMINAL = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
            "PREEMPTED", "TIMEOUT"}
GONE = "GONE"  # scontrol no longer knows the job (purged after MinJobAge)
REPORT = "# report\n"


def _run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)


def _state(job_id: str) -> dict[str, str]:
    proc = _run("scontrol", "show", "job", job_id)
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr + proc.stdout:
            return {"JobState": GONE}
        raise AssertionError(f"scontrol show job {job_id} failed: {proc.stderr}")
    return dict(re.findall(r"(\w+)=(\S*)", proc.stdout))


def _wait_all(job_ids: dict[str, str], timeout: float = 45) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        info = {stage: _state(job) for stage, job in job_ids.items()}
        if all(i["JobState"] in TERMINAL | {GONE} for i in info.values()):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not finished after {timeout:.0f}s: "
                                 f"{ {s: i['JobState'] for s, i in info.items()} }")
        time.sleep(0.3)


def _submit(bundle: Path) -> dict[str, str]:
    result = _run("bash", str(bundle / "launch" / "submit.sh"), cwd=bundle.parent)
    assert result.returncode == 0, result.stderr
    ids = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert all(v.isdigit() for v in ids.values()), result.stdout
    return ids


def _bundle(tmp_path: Path, fail_stage: str | None = None, real: tuple[str, ...] = ()):
    log = tmp_path / "calls"
    root = Path(__file__).resolve().parents[2]
    python = fake_python(tmp_path / "bin" / "python", log, fail_stage=fail_stage, real=real,
                         interpreter=sys.executable, pythonpath=str(root))
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "launcher=slurm",
                     f"launcher.python={python}")
    return plan, write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name), log


def test_sbatch_accepts_every_compiled_script(slurm_cluster, tmp_path):
    assert len(GOALS) >= 7, GOALS
    checked = []
    for goal in GOALS:
        plan = make_plan(f"+goal={goal}", "inventory=local", "launcher=slurm")
        bundle = write_bundle(render(plan, REPORT), tmp_path, plan.name)
        (bundle / "logs").mkdir()
        for script in sorted((bundle / "launch").glob("*.sbatch")):
            result = _run("sbatch", "--test-only", f"--chdir={bundle}", str(script), cwd=bundle)
            assert result.returncode == 0, f"{goal}: {script.name}: {result.stderr}"
            assert "to start at" in result.stderr, result.stderr
            checked.append(f"{goal}/{script.name}")
    assert len(checked) >= 7 * 4, checked


@pytest.fixture(scope="module")
def tiny_model():
    """The tiny model, built before a Slurm job needs its tokenizer (a build takes about a minute)."""
    from runtime import tiny

    return tiny.build(progress=False)


def test_submitted_bundle_runs_stages_in_dag_order(slurm_cluster, tiny_model, tmp_path):
    """The real runtime runs validate_data under Slurm; the later stages are recorded, not run."""
    plan, bundle, log = _bundle(tmp_path, real=("validate_data",))
    ids = _submit(bundle)
    assert list(ids) == [s.name for s in plan.stages]
    try:
        info = _wait_all(ids)
    finally:
        _run("scancel", *ids.values())
    for stage, i in info.items():
        assert i["JobState"] in {"COMPLETED", GONE}, (stage, i)
    ran = stages_run(log)
    assert sorted(ran) == sorted(ids), ran
    for stage in plan.stages:
        for dep in stage.after:
            assert ran.index(dep) < ran.index(stage.name), f"{stage.name} ran before {dep}: {ran}"
    for stage, job in ids.items():
        assert (bundle / "logs" / f"{stage}-{job}.out").is_file(), stage
    status = json.loads((bundle / "run" / "validate_data" / "status.json").read_text())
    assert status["state"] == "completed", status
    report = json.loads((bundle / "run" / "validate_data" / "report.json").read_text())
    assert report["splits"]["training"]["records"] == 400 and report["tokens"]["max"] > 0


def test_failed_stage_cancels_its_dependents(slurm_cluster, tmp_path):
    plan, bundle, log = _bundle(tmp_path, fail_stage="train")
    ids = _submit(bundle)
    try:
        info = _wait_all(ids)
    finally:
        _run("scancel", *ids.values())
    states = {stage: i["JobState"] for stage, i in info.items()}
    assert states["validate_data"] in {"COMPLETED", GONE}, states
    assert states["baseline_eval"] in {"COMPLETED", GONE}, states
    assert states["train"] in {"FAILED", GONE}, states
    for stage in ("eval", "gate", "publish"):
        assert states[stage] in {"CANCELLED", GONE}, states
        if states[stage] == "CANCELLED":
            assert info[stage]["Reason"] == "DependencyNeverSatisfied", info[stage]
        assert not list((bundle / "logs").glob(f"{stage}-*.out")), stage
    assert sorted(stages_run(log)) == ["baseline_eval", "train", "validate_data"]


@pytest.mark.parametrize("goal", ["safety_alignment", "math_reasoning"])
def test_preference_and_rl_pipelines_run_end_to_end_under_slurm(slurm_cluster, tiny_model, tmp_path, goal):
    """SFT -> DPO and SFT -> GRPO, every stage the real runtime, submitted with launch/submit.sh: the
    SFT stage's model reaches the next job by path, each stage writes its lifecycle files, the gate
    passes and publish runs."""
    root = Path(__file__).resolve().parents[2]
    plan = make_plan(f"+goal={goal}", "model=tiny-llama", "inventory=local", "launcher=slurm",
                     f"launcher.python={sys.executable}")
    assert plan.decision.pipeline[0] == "sft"
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(["bash", str(bundle / "launch" / "submit.sh")], cwd=bundle.parent, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    ids = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert list(ids) == [s.name for s in plan.stages]
    try:
        info = _wait_all(ids, timeout=420)
    finally:
        _run("scancel", *ids.values())
    logs = {stage: (bundle / "logs" / f"{stage}-{job}.out") for stage, job in ids.items()}
    for stage, i in info.items():
        tail = logs[stage].read_text()[-1500:] if logs[stage].is_file() else "(no log)"
        assert i["JobState"] in {"COMPLETED", GONE}, (stage, i["JobState"], tail)
    for stage in ("train_sft", "train"):
        status = json.loads((bundle / "run" / stage / "status.json").read_text())
        assert status["state"] == "completed" and status["steps_completed"] > 0, (stage, status)
        assert (bundle / "run" / stage / "metrics.jsonl").stat().st_size > 0
    assert "run/train_sft/model" in logs["train"].read_text()  # the DPO / GRPO job started from the SFT output
    gate = json.loads((bundle / plan.artifacts.gate).read_text())
    assert gate["verdict"] == "pass", gate["reasons"]
    assert gate["tuned"]["task_score"] > gate["baseline"]["task_score"]
    assert (bundle / plan.artifacts.published_dir).is_dir()
