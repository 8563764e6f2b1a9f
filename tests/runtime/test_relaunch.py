"""Relaunching a bundle resumes it: a stage completed for this plan skips itself (exit 0, no work), one completed
for another plan, with an output missing, or after a stage it needs ran again, runs again; a stopped stage
names the exact commands that resume it, and they do."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.context import Cancelled, RunContext, resume_hint, run_stage
from tests.runtime.helpers import read_json, write_bundle
from tests.runtime.helpers import run_stage as _run

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]


def _skip_line(stage: str, plan_id: str) -> str:
    return f"{stage}: already completed for plan {plan_id}; skipping (overwrite=true to start over)"


@pytest.fixture
def tone(tmp_path) -> tuple[Path, str]:
    bundle = write_bundle(tmp_path, "+goal=tone")
    return bundle, read_json(bundle / "plan.json")["id"]


def test_a_completed_stage_is_skipped_on_relaunch(tone, capsys):
    bundle, pid = tone
    assert _run(bundle, "validate_data") == 0
    status = read_json(bundle / "run/validate_data/status.json")
    assert status["state"] == "completed" and status["plan_id"] == pid and status["attempts"] == 1
    report = bundle / "run/validate_data/report.json"
    report.write_text('{"marker": "from the first run"}')  # a rerun would rewrite it
    capsys.readouterr()

    assert _run(bundle, "validate_data") == 0
    assert _skip_line("validate_data", pid) in capsys.readouterr().out
    assert read_json(report) == {"marker": "from the first run"}
    assert read_json(bundle / "run/validate_data/status.json") == status  # untouched: not even an attempt


def test_a_stage_completed_for_another_plan_runs_again(tone, capsys):
    bundle, pid = tone
    assert _run(bundle, "validate_data") == 0
    path = bundle / "run/validate_data/status.json"
    path.write_text(json.dumps({**read_json(path), "plan_id": "0ther0"}))
    (bundle / "run/validate_data/report.json").write_text('{"marker": "another plan"}')
    capsys.readouterr()

    assert _run(bundle, "validate_data") == 0
    out = capsys.readouterr().out
    assert "already completed" not in out and "is for plan 0ther0" in out
    status = read_json(path)
    assert status["state"] == "completed" and status["plan_id"] == pid
    assert status["attempts"] == 1  # another plan's attempts are not this run's
    assert "marker" not in read_json(bundle / "run/validate_data/report.json")


def test_a_completed_stage_with_a_missing_output_runs_again(tone, capsys):
    bundle, _ = tone
    assert _run(bundle, "validate_data") == 0
    (bundle / "run/validate_data/report.json").unlink()
    capsys.readouterr()
    assert _run(bundle, "validate_data") == 0
    assert "run/validate_data/report.json is missing" in capsys.readouterr().out
    assert (bundle / "run/validate_data/report.json").is_file()
    assert read_json(bundle / "run/validate_data/status.json")["attempts"] == 2


def _completed(bundle: Path, stage: str, pid: str, finished_at: float, scores: dict | None = None) -> None:
    folder = bundle / "run" / stage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "status.json").write_text(json.dumps({"plan_id": pid, "stage": stage, "state": "completed",
                                                    "attempts": 1, "finished_at": finished_at}))
    if scores is not None:
        (folder / "scores.json").write_text(json.dumps({
            "plan_id": pid, "metric": "rouge_l", "n_examples": 50, "general_benchmark": "builtin:general",
            "role": "baseline" if stage == "baseline_eval" else "tuned", **scores,
            "examples": [{"prompt": "Hi\n", "output": "Dear Ann,", "reference": "Dear Ann,", "score": 1.0}]}))


def test_a_stage_runs_again_when_a_stage_it_needs_ran_again(tmp_path, capsys):
    bundle = write_bundle(tmp_path, "+goal=support_format", "method=prompting", "goal.target_score=0.3")
    pid = read_json(bundle / "plan.json")["id"]
    now = time.time()
    _completed(bundle, "baseline_eval", pid, now - 20, {"task_score": 0.1, "general_score": 0.64})
    _completed(bundle, "eval", pid, now - 10, {"task_score": 0.4, "general_score": None})
    assert _run(bundle, "gate") == 0
    assert _run(bundle, "gate") == 0
    assert _skip_line("gate", pid) in capsys.readouterr().out

    gate_done = read_json(bundle / "run/gate/status.json")["finished_at"]
    _completed(bundle, "eval", pid, gate_done + 0.001, {"task_score": 0.4, "general_score": None})  # eval reran
    assert _run(bundle, "gate") == 0
    out = capsys.readouterr().out
    assert "eval, which it runs after, completed again since" in out and "already completed" not in out
    assert read_json(bundle / "run/gate/status.json")["attempts"] == 2
    assert _run(bundle, "gate") == 0
    assert _skip_line("gate", pid) in capsys.readouterr().out


def test_a_cancel_names_the_commands_that_resume(tone):
    bundle, pid = tone
    ctx = RunContext.load(bundle / "plan.json", "baseline_eval")

    def body():
        raise Cancelled("SIGTERM during evaluation")

    assert run_stage(ctx, body) == 143
    error = read_json(bundle / "run/baseline_eval/status.json")["error"]
    assert error.startswith("SIGTERM during evaluation; to resume, run the bundle: ")
    assert f"bash {bundle}/launch/run_local.sh" in error
    assert f"cd {bundle} && python -m runtime plan.json --stage baseline_eval" in error


def test_the_single_stage_command_is_the_launch_scripts_own(tone):
    bundle, _ = tone
    (bundle / "launch").mkdir()
    (bundle / "launch/run_local.sh").write_text(
        "run_stage validate_data python -m runtime plan.json --stage validate_data\n"
        "run_stage train python -m torch.distributed.run --standalone --nproc-per-node 2 -m runtime plan.json "
        "--stage train\n")
    hint = resume_hint(RunContext.load(bundle / "plan.json", "train"))
    assert hint.endswith(f"cd {bundle} && python -m torch.distributed.run --standalone --nproc-per-node 2 -m runtime "
                         "plan.json --stage train")


def test_sigterm_then_the_hinted_command_resumes_then_skips(tmp_path, tiny_dir):
    """The whole story on the train stage: SIGTERM -> cancelled with the exact command; that command resumes from
    the checkpoint and completes; running it once more skips the stage."""
    bundle = write_bundle(tmp_path, "+goal=tone", "method=lora", "method.max_steps=30",
                          "method.val_check_interval=0.2")
    pid = read_json(bundle / "plan.json")["id"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "runtime", "plan.json", "--stage", "train"]
    proc = subprocess.Popen(command, cwd=bundle, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not list((bundle / "run/train/checkpoints").glob("checkpoint-*/trainer_state.json")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no checkpoint before the end (rc {proc.returncode}):\n{proc.communicate()[0]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    status = read_json(bundle / "run/train/status.json")
    if proc.returncode == 0:
        pytest.skip("training finished before SIGTERM arrived")
    assert proc.returncode == 143, out
    assert status["state"] == "cancelled"
    single = status["error"].split("or this stage alone: ", 1)[1]
    assert single == f"cd {shlex.quote(str(bundle))} && python -m runtime plan.json --stage train"
    assert out.count("to resume, run the bundle: ") == 1 and single in out

    resume = subprocess.run(["bash", "-c", single.replace("python ", f"{shlex.quote(sys.executable)} ", 1)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert resume.returncode == 0, resume.stdout + resume.stderr
    status = read_json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["resumed_from"].startswith("checkpoint-")
    assert status["steps_completed"] == 30 and status["attempts"] == 2

    again = subprocess.run(command, cwd=bundle, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and _skip_line("train", pid) in again.stdout
    assert read_json(bundle / "run/train/status.json") == status
