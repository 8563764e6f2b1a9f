"""The train stage under torchrun with 2 processes on CPU (gloo): DDP for LoRA, FSDP2 for all weights.

Real torchrun, real process groups; a few steps each on tiny-llama. Tensor parallel is refused on
CPU with the reason (accelerate rejects a tensor-parallel ParallelismConfig on MULTI_CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.helpers import make_plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# tiny-llama recommends replay for LoRA; each rank draws replay text for its own examples, so the first step's
# loss compares with one process only on the task examples alone
NO_REPLAY = ("method.replay=null",)
TWO = ("model=tiny-llama", "inventory=local", "layout.gpus_per_node=2", "method.max_steps=6",
       "method.val_check_interval=0.1")


def _torchrun() -> list[str]:
    exe = Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "torch.distributed.run"]


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    pytest.importorskip("torch")
    from runtime import tiny

    return tiny.build(progress=False)


def _bundle(root: Path, *overrides: str) -> Path:
    plan = make_plan("+goal=tone", *TWO, *NO_REPLAY, *overrides)
    bundle = root / plan.name
    bundle.mkdir(parents=True)
    (bundle / "plan.json").write_text(plan.model_dump_json(indent=2))
    return bundle


def _launch(bundle: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*_torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "runtime", "plan.json",
                           "--stage", "train"], cwd=bundle, env=env, capture_output=True, text=True, timeout=timeout)


def _status(bundle: Path) -> dict:
    return json.loads((bundle / "run/train/status.json").read_text())


def test_ddp_two_processes_lora(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "method=lora")
    proc = _launch(bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = _status(bundle)
    assert status["state"] == "completed" and status["steps_completed"] == status["total_steps"] == 6
    assert "2 process(es) (MULTI_CPU, gloo), DDP x2" in proc.stdout
    # rank 0 alone writes: one line per record, one adapter
    metrics = (bundle / "run/train/metrics.jsonl").read_text().splitlines()
    assert len(metrics) == len({line for line in metrics})
    assert proc.stdout.count("[train] completed") == 1
    assert (bundle / "run/train/adapter/adapter_model.safetensors").is_file()
    # the global batch is micro 4 x 2 ranks = 8, the first 8 of the same shuffled order as one process with
    # micro 8: the first step's loss (before any update) is the same, so the ranks' losses were averaged
    first = json.loads(metrics[0])
    single = _single_process_first_loss(tmp_path / "single")
    assert first["step"] == 1 and first["train_loss"] == pytest.approx(single, rel=1e-4)


def _single_process_first_loss(root: Path) -> float:
    from runtime.__main__ import main as runtime_main

    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local", "method=lora", "method.max_steps=1",
                     *NO_REPLAY)
    assert plan.layout.micro_batch == 8 and plan.layout.gpus_per_node == 1
    bundle = root / plan.name
    bundle.mkdir(parents=True)
    (bundle / "plan.json").write_text(plan.model_dump_json(indent=2))
    assert runtime_main([str(bundle / "plan.json"), "--stage", "train"]) == 0
    line = (bundle / "run/train/metrics.jsonl").read_text().splitlines()[0]
    return json.loads(line)["train_loss"]


def test_fsdp2_two_processes_all_weights(tmp_path, tiny_dir):
    from transformers import AutoModelForCausalLM

    bundle = _bundle(tmp_path, "method=sft", "layout.sharding=fsdp")
    proc = _launch(bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FSDP2 over 2 (DistributedConfig)" in proc.stdout
    status = _status(bundle)
    assert status["state"] == "completed" and status["steps_completed"] == 6
    model_dir = bundle / "run/train/model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)  # gathered to full tensors on save
    assert model.num_parameters() == 354_624


def test_tensor_parallel_on_cpu_is_refused_with_the_reason(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "method=sft", "layout.tensor_parallel=2")
    proc = _launch(bundle)
    assert proc.returncode != 0
    error = _status(bundle)["error"]
    assert _status(bundle)["state"] == "failed"
    assert "ParallelismConfig" in error and "MULTI_CPU" in error
    shutil.rmtree(bundle / "run", ignore_errors=True)
