"""Fault injection on real tiny-llama bundles (CPU): SIGKILL at random points of every stage kind, a full disk
during a checkpoint, and two launches of one bundle.

* SIGKILL: the bundle's own run script (launch/run_local.sh) is started and its whole process group killed at
  seeded random moments inside each stage (a delay drawn from 0 to 0.9 x that stage's time in an uninterrupted run
  of the same plan), then relaunched, until a last launch runs to the end. The result must equal the uninterrupted
  run's exactly: every metrics.jsonl line but tokens_per_second (a rate) and time, the final losses in status.json, the
  weights byte for byte, the evaluation scores, the gate verdict and the published model card. Exact, not within a
  tolerance: the Trainer restores the data order and RNG from a checkpoint at a step boundary, and the runtime puts
  back the logging window (runtime.checkpoints.save_window), so the replayed steps are the same computation.
  Meanwhile a watcher reads every status.json and metrics.jsonl every few milliseconds: each status.json must parse
  with a valid state (written by temp file + os.replace), each metrics line but the last must parse.
  The seed is printed (and in every failure message); FAULTS_SEED=<n> replays it.
* Full disk: the train stage's folder is a small tmpfs (needs root, or CAP_SYS_ADMIN, to mount: without it the
  test is skipped and says so, in CI too: the container decides, not the code), one checkpoint fits and the next
  does not: the stage fails with exit 1 and a clear last line, status.json says why, the previous checkpoint is
  intact; after the tmpfs grows, the rerun resumes from it and ends with the uninterrupted run's metrics.
* Two launches: while one run holds the bundle, a second launch=true (or overwrite=true, or the run script, or the
  stage by hand) refuses with exit 75, names the running pid and how to stop it, and changes nothing.

Runtime: about 4 minutes on 2 cores, most of it the uninterrupted reference runs and the relaunches.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from planner.bundle import write_bundle
from planner.render import render
from runtime.status import STATES
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
SEED = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1, 1 << 31))
TINY = ("model=tiny-llama", "inventory=local", f"launcher.python={sys.executable}")
# small evaluations, and a gate that passes (so publish runs): the target is low, forgetting is not judged
EVAL = ("eval.max_examples=4", "eval.max_new_tokens=12", "goal.target_score=0.0", "eval.forgetting_threshold=100")
# a checkpoint every 3 steps (tone: 50 steps per epoch), warmup within the run
LORA = ("method=lora", "method.max_steps=12", "method.val_check_interval=0.06", "method.warmup_steps=1")

# kind -> (overrides, {training stage: (max_steps, val_check_interval)} put into the plan, {stage: kill points})
KINDS: dict[str, tuple[tuple[str, ...], dict[str, tuple[int, float]], dict[str, int]]] = {
    "lora": (("+goal=tone", *LORA), {}, {"baseline_eval": 1, "train": 3, "eval": 1, "gate": 1, "publish": 1}),
    "dpo": (("+goal=safety_alignment", "method=dpo"), {"train_sft": (6, 0.04), "train": (6, 0.04)},
            {"train_sft": 2, "train": 2}),
    "grpo": (("+goal=math_reasoning", "method=grpo", "++method.num_generations_per_prompt=4",
              "++method.max_completion_length=16"), {"train_sft": (4, 0.04), "train": (4, 0.01)},
             {"train_sft": 1, "train": 2}),
    "kto": (("+goal=safety_alignment", "data=safety_feedback", "method=kto"), {"train_sft": (4, 0.04),
            "train": (6, 0.04)}, {"train": 2}),
}


def _log(message: str) -> None:
    sys.stderr.write(f"[faults seed {SEED}] {message}\n")


def _bundle(root: Path, kind: str) -> Path:
    overrides, steps, _ = KINDS[kind]
    plan = make_plan(*overrides, *TINY, *EVAL)
    assert plan.feasible, [f.message for f in plan.findings if f.severity == "error"]
    stages = []
    for stage in plan.stages:
        if stage.name in steps and stage.method is not None:
            max_steps, interval = steps[stage.name]
            method = stage.method.model_copy(update={"max_steps": max_steps, "val_check_interval": interval})
            stage = stage.model_copy(update={"method": method})
        stages.append(stage)
    plan = plan.model_copy(update={"stages": tuple(stages)})
    return write_bundle(render(plan, "# report\n"), root, plan.name)


def _status(bundle: Path, stage: str) -> dict:
    try:
        return json.loads((bundle / "run" / stage / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _stages(bundle: Path) -> list[str]:
    return [s["name"] for s in json.loads((bundle / "plan.json").read_text())["stages"]]


def _launch(bundle: Path, log: Path) -> subprocess.Popen:
    with log.open("a") as out:  # a file, not a pipe: nobody has to drain it while the test waits
        return subprocess.Popen(["bash", str(bundle / "launch/run_local.sh")], env=ENV, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL to the run script and every stage process it started (its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _wait(check, proc: subprocess.Popen, log: Path, stage: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            _kill(proc)
            pytest.fail(f"seed {SEED}: {stage}: not reached (rc {proc.returncode}):\n{log.read_text()[-4000:]}")
        time.sleep(0.005)


def _run_to_end(bundle: Path, log: Path, timeout: float = 300) -> int:
    proc = _launch(bundle, log)
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            _kill(proc)


class Watcher(threading.Thread):
    """Reads every status.json and metrics.jsonl of a bundle in a loop while it runs and is killed: a status.json
    that exists must parse with a valid state; a metrics line that does not parse may only be the last one."""

    def __init__(self, bundle: Path):
        super().__init__(daemon=True)
        self.bundle, self.stop, self.problems, self.reads = bundle, threading.Event(), [], 0

    def run(self) -> None:
        while not self.stop.is_set():
            for path in self.bundle.glob("run/*/status.json"):
                try:
                    text = path.read_text()
                except FileNotFoundError:
                    continue
                self.reads += 1
                try:
                    data = json.loads(text)
                    ok = isinstance(data, dict) and data.get("state") in STATES
                except ValueError:
                    ok = False
                if not ok:
                    self.problems.append(f"{path.relative_to(self.bundle)}: {text[:200]!r}")
            for path in self.bundle.glob("run/*/metrics.jsonl"):
                try:
                    lines = path.read_text().splitlines()
                except FileNotFoundError:
                    continue
                for line in lines[:-1]:
                    try:
                        json.loads(line)
                    except ValueError:
                        self.problems.append(f"{path.relative_to(self.bundle)}: torn line {line[:200]!r}")
            time.sleep(0.005)

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join(timeout=10)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outcome(bundle: Path) -> dict:
    """What a finished run leaves that must not depend on kills: metrics lines (less tokens/s), final losses and
    steps, weights, scores, gate verdict and the published model."""
    out: dict = {}
    for stage in _stages(bundle):
        status = _status(bundle, stage)
        out[f"{stage}.state"] = status.get("state")
        for key in ("steps_completed", "total_steps", "train_loss", "val_loss", "best_epoch", "best_checkpoint",
                    "epochs_completed", "stopped_early"):
            if key in status:
                out[f"{stage}.{key}"] = status[key]
        folder = bundle / "run" / stage
        if (folder / "metrics.jsonl").is_file():
            out[f"{stage}.metrics"] = [{k: v for k, v in json.loads(line).items() if k not in ("tokens_per_second", "time")}
                                       for line in (folder / "metrics.jsonl").read_text().splitlines()]
        for weights in sorted(folder.glob("*/*.safetensors")):
            if "checkpoints" not in weights.parts:
                out[str(weights.relative_to(bundle))] = _sha(weights)
        if (folder / "scores.json").is_file():
            scores = json.loads((folder / "scores.json").read_text())
            out[f"{stage}.scores"] = {k: scores[k] for k in ("task_score", "general_score", "examples", "n_examples")}
    gate = bundle / "run/gate/gate.json"
    if gate.is_file():
        out["gate"] = {k: v for k, v in json.loads(gate.read_text()).items() if k in ("verdict", "reasons", "checks")}
    for card in bundle.glob("run/publish/**/model_card.json"):
        out["model_card"] = json.loads(card.read_text())
        out["model_card"]["metrics"].pop("train_seconds")  # wall time
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_dir):
    """The uninterrupted run of each kind's plan (built on first use, shared by the tests of this module)."""
    runs: dict[str, tuple[Path, int]] = {}

    def get(kind: str) -> tuple[Path, int]:
        """The bundle and the run script's exit code: 0, or 1 when the gate failed (a few steps of DPO, GRPO or
        KTO on tiny-llama do not move the metric; publish then does not run, killed or not)."""
        if kind not in runs:
            bundle = _bundle(tmp_path_factory.mktemp(f"reference-{kind}"), kind)
            log = bundle.parent / "run.log"
            rc = _run_to_end(bundle, log)
            assert rc == 0 or (rc == 1 and _status(bundle, "gate").get("state") == "failed"), log.read_text()[-4000:]
            runs[kind] = bundle, rc
        return runs[kind]

    return get


# ----------------------------------------------------------------------------- writers killed mid-write

WRITER = """
import sys
from pathlib import Path
from runtime.status import Metrics, Status
status = Status(Path(sys.argv[1]) / "status.json", plan_id="p", stage="train")
metrics = Metrics(Path(sys.argv[1]) / "metrics.jsonl")
big = ["x" * 64] * 2000  # a status of ~140 kB: many write(2) calls each, so a kill lands inside one
print("ready", flush=True)
step = 0
while True:
    step += 1
    status.update(state="running", steps_completed=step, notes=big)
    metrics.write(kind="step", step=step, train_loss=1.0 / step, notes=big[:20])
"""


def test_status_and_metrics_survive_sigkill_mid_write(tmp_path):
    """A process rewriting status.json and appending metrics lines as fast as it can, SIGKILLed 15 times at random
    moments: status.json always parses, every metrics line but possibly the last parses. (Written in place, as
    open('w') + json.dump, the status is torn by nearly every kill.)"""
    rng = random.Random(SEED)
    for i in range(15):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=ENV, stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        text = (tmp_path / "status.json").read_text()
        try:
            status = json.loads(text)
        except ValueError:
            pytest.fail(f"seed {SEED}, kill {i}: torn status.json ({len(text)} bytes): {text[-120:]!r}")
        assert status["state"] == "running"
        lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
        for line in lines[:-1]:
            json.loads(line)
        from runtime.status import read_jsonl, replace_jsonl

        replace_jsonl(tmp_path / "metrics.jsonl", read_jsonl(tmp_path / "metrics.jsonl"))  # what a resume does


# ----------------------------------------------------------------------------- SIGKILL at random points


@pytest.mark.parametrize("kind", list(KINDS))
def test_sigkill_at_random_points_then_relaunch_ends_as_an_uninterrupted_run(kind, reference, tmp_path):
    expected_bundle, expected_rc = reference(kind)
    expected = _outcome(expected_bundle)
    elapsed = {s: float(_status(expected_bundle, s).get("elapsed_seconds") or 1.0) for s in _stages(expected_bundle)}
    bundle = _bundle(tmp_path, kind)
    log = tmp_path / "run.log"
    rng = random.Random(f"{SEED}-{kind}")
    _, _, points = KINDS[kind]
    kills: list[str] = []
    with Watcher(bundle) as watcher:
        for stage, count in points.items():
            # a training stage's save steps (= its evaluation steps) in the uninterrupted run, the last one excepted
            saves = sorted({r["step"] for r in expected.get(f"{stage}.metrics", []) if r["kind"] == "epoch"})[:-1]
            for i in range(count):
                attempts = int(_status(bundle, stage).get("attempts") or 0)
                if _status(bundle, stage).get("state") == "completed":
                    break  # an earlier kill landed after it ended: nothing left to kill in it
                proc = _launch(bundle, log)
                _wait(lambda: int(_status(bundle, stage).get("attempts") or 0) > attempts, proc, log, stage)
                done = [int(p.name.split("-")[1]) for p in (bundle / f"run/{stage}/checkpoints").glob("checkpoint-*")]
                later = [step for step in saves if step > max(done, default=0)]
                mode = ("anywhere", "after a checkpoint", "while saving")[i % 3] if later else "anywhere"
                if mode == "anywhere":  # from the start: loading, training, evaluating, saving
                    delay = rng.uniform(0, 0.9 * elapsed[stage])
                    when = f"+{delay:.2f}s"
                else:  # the steps after a complete checkpoint (replayed on resume), or while one is written
                    # not the last one before the end: the kill must come before the stage completes
                    target = bundle / f"run/{stage}/checkpoints/checkpoint-{rng.choice(later[:-1] or later)}"
                    marker = target / "trainer_state.json" if mode == "after a checkpoint" else target
                    _wait(marker.exists, proc, log, stage)
                    delay = rng.uniform(0, 0.15 if mode == "after a checkpoint" else 0.1)
                    when = f"{mode} {target.name}+{delay:.2f}s"
                time.sleep(delay)
                state = _status(bundle, stage).get("state")
                _kill(proc)
                kills.append(f"{stage} {when} ({state}, step {_status(bundle, stage).get('steps_completed')})")
        _log(f"{kind}: killed at {'; '.join(kills)}")
        rc = _run_to_end(bundle, log)
    assert rc == expected_rc, f"seed {SEED}, kills {kills}:\n{log.read_text()[-4000:]}"
    assert expected_rc == 0 or kind != "lora"  # the tone run passes its gate: publish is killed and reruns
    assert not watcher.problems, f"seed {SEED}, kills {kills}: torn reads {watcher.problems[:5]}"
    assert watcher.reads > 100  # the watcher really read along
    got = _outcome(bundle)
    assert got.keys() == expected.keys(), f"seed {SEED}, kills {kills}"
    for key in expected:
        assert got[key] == expected[key], f"seed {SEED}, kills {kills}: {key} differs"
    assert all(_status(bundle, s).get("state") == _status(expected_bundle, s).get("state") for s in _stages(bundle))
    assert any(int(_status(bundle, s).get("attempts") or 0) > 1 for s in points), f"seed {SEED}: no stage was hit"
    # a kill after a complete checkpoint resumed from it: the equality above covers replayed steps
    assert "resumed from checkpoint-" in log.read_text(), f"seed {SEED}, kills {kills}: no resume from a checkpoint"


# ----------------------------------------------------------------------------- a full disk during a checkpoint


def _mount_tmpfs(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` on `folder`; the reason it cannot be done (not root, no CAP_SYS_ADMIN), or None."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"mount: {exc}"
    return None if done.returncode == 0 else f"mount -t tmpfs exited {done.returncode}: {done.stderr.strip()}"


def test_a_full_disk_during_a_checkpoint_fails_cleanly_and_resumes_after_space_is_freed(reference, tmp_path):
    """run/train on a 1100 KiB tmpfs: checkpoint-3 (~780 KiB for the tone LoRA) fits, checkpoint-6 does not."""
    expected_bundle, _ = reference("lora")
    expected = _outcome(expected_bundle)
    bundle = _bundle(tmp_path, "lora")
    folder = bundle / "run/train"
    why = _mount_tmpfs(folder, "1100k")
    if why is not None:
        pytest.skip(f"cannot mount a small tmpfs to fill ({why}): run as root (CI runs as root)")
    command = [sys.executable, "-m", "runtime", "plan.json", "--stage", "train"]
    try:
        full = subprocess.run(command, cwd=bundle, env=ENV, capture_output=True, text=True, timeout=300)
        output = full.stdout + full.stderr
        assert full.returncode == 1, output[-4000:]
        assert "Traceback" not in output, output[-4000:]
        last = full.stderr.strip().splitlines()[-1]
        assert last.startswith("[train] failed: no space left on device while saving checkpoint-6 to "), last
        assert "the partial checkpoint-6 was removed; the last complete checkpoint, checkpoint-3, is intact" in last
        assert "to resume, run the bundle: " in last
        status = _status(bundle, "train")
        assert status["state"] == "failed" and status["error"] == last.removeprefix("[train] failed: ")
        checkpoints = folder / "checkpoints"
        assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-3"]
        assert json.loads((checkpoints / "checkpoint-3/trainer_state.json").read_text())["global_step"] == 3

        grown = subprocess.run(["mount", "-o", "remount,size=16m", str(folder)], capture_output=True, text=True)
        assert grown.returncode == 0, grown.stderr
        again = subprocess.run(command, cwd=bundle, env=ENV, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
        assert "resumed from checkpoint-3" in again.stdout
        status = _status(bundle, "train")
        assert status["state"] == "completed" and status["resumed_from"] == "checkpoint-3"
        got = _outcome(bundle)
        for key in ("train.metrics", "train.train_loss", "train.val_loss", "train.steps_completed",
                    "run/train/adapter/adapter_model.safetensors"):
            assert got[key] == expected[key], key
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=60)


# ----------------------------------------------------------------------------- two launches of one bundle


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def test_a_second_launch_refuses_while_the_bundle_runs_and_a_killed_run_leaves_no_stale_lock(tmp_path, tiny_dir):
    overrides = ("+goal=tone", "method=lora", "method.max_steps=400", "method.val_check_interval=0.1", *TINY)
    plan = make_plan(*overrides)
    bundle = write_bundle(render(plan, "# report\n"), tmp_path, plan.name)
    log = tmp_path / "run.log"
    first = _launch(bundle, log)
    try:
        _wait(lambda: _status(bundle, "train").get("state") == "running", first, log, "train")
        stage_pid = (bundle / "run/train/.lock").read_text().strip()
        before = _status(bundle, "train")

        script = subprocess.run(["bash", str(bundle / "launch/run_local.sh")], env=ENV, capture_output=True,
                                text=True, timeout=60)
        assert script.returncode == 75, script.stdout + script.stderr
        assert f"is already running (pid {first.pid})" in script.stderr
        assert f"python -m planner.cancel {bundle}" in script.stderr and script.stdout == ""

        planner = _cli("-m", "planner", *overrides, f"out_dir={tmp_path}", "launch=true")
        assert planner.returncode == 75, planner.stderr[-2000:]
        assert f"{bundle} is running (its run script, pid {first.pid}): a second launch" in planner.stderr
        assert f"stop it: python -m planner.cancel {bundle} (or kill -TERM {first.pid})" in planner.stderr

        overwrite = _cli("-m", "planner", *overrides, f"out_dir={tmp_path}", "launch=true", "overwrite=true")
        assert overwrite.returncode == 75 and "overwrite=true would" in overwrite.stderr, overwrite.stderr[-2000:]
        assert "removed" not in overwrite.stderr and (bundle / "run/validate_data/status.json").is_file()

        stage = _cli("-m", "runtime", "plan.json", "--stage", "train", cwd=bundle)
        assert stage.returncode == 75, stage.stdout + stage.stderr
        assert f"stage train of {bundle} is already running (pid {stage_pid})" in stage.stderr
        assert "python -m planner.cancel" in stage.stderr
        after = _status(bundle, "train")
        assert after["state"] == "running" and after["attempts"] == before["attempts"]  # nothing recorded
        assert first.poll() is None  # the first run goes on
    finally:
        _kill(first)  # SIGKILL: the kernel drops its locks

    relaunch = _launch(bundle, log)
    try:
        _wait(lambda: _status(bundle, "train").get("attempts", 0) > after["attempts"], relaunch, log, "train")
    finally:
        _kill(relaunch)
    assert "already running" not in log.read_text()
