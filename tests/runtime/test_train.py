"""train / train_sft / publish on tiny-llama (CPU): LoRA and full SFT, resume after SIGKILL, SIGTERM,
the NaN guard, malformed data, and the published adapter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.helpers import TINY, write_bundle
from tests.runtime.helpers import read_json as _json
from tests.runtime.helpers import read_metrics as _metrics
from tests.runtime.helpers import run_stage as _run
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]
# a few steps, evaluated (and checkpointed) every 5 steps: tone has 50 steps per epoch at micro batch 8
FEW = ("method.max_steps=6", "method.val_check_interval=0.1")


def _bundle(root: Path, *overrides: str, goal: str = "+goal=tone") -> Path:
    return write_bundle(root, goal, *overrides)


def _popen(bundle: Path, stage: str = "train") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "runtime", "plan.json", "--stage", stage], cwd=bundle, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(bundle: Path, proc: subprocess.Popen, timeout: float = 120.0) -> Path:
    folder = bundle / "run/train/checkpoints"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sorted(folder.glob("checkpoint-*/trainer_state.json")) if folder.is_dir() else []
        if done:
            return done[0].parent
        if proc.poll() is not None:
            out, _ = proc.communicate()
            pytest.fail(f"training ended (rc {proc.returncode}) before a checkpoint appeared:\n{out}")
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    pytest.fail("no checkpoint within the timeout")


@pytest.fixture(scope="module")
def lora_bundle(tmp_path_factory, tiny_dir) -> Path:
    """A tone LoRA bundle trained for 6 steps (lr 1e-3 so the adapter visibly moves the logits)."""
    bundle = _bundle(tmp_path_factory.mktemp("lora"), "method=lora", *FEW, "method.learning_rate=1e-3",
                     "method.warmup_steps=0")
    assert _run(bundle, "train") == 0
    return bundle


# ----------------------------------------------------------------------------- LoRA and full SFT


def test_lora_writes_a_peft_adapter_status_and_metrics(lora_bundle):
    from schemas.plan import Plan

    plan = Plan.model_validate_json((lora_bundle / "plan.json").read_text())
    adapter = lora_bundle / plan.artifacts.adapter_dir
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    config = _json(adapter / "adapter_config.json")
    lora = plan.stage("train").method.lora  # tiny-llama's recommended r16 / alpha 32, kept under one override
    assert (lora.adapter_dim, lora.alpha) == (16, 32)
    assert config["peft_type"] == "LORA" and config["r"] == 16 and config["lora_alpha"] == 32
    assert config["lora_dropout"] == 0.1
    modules = {m.rsplit(".", 1)[-1] for m in config["target_modules"]}
    assert modules == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # all-linear
    status = _json(lora_bundle / plan.artifacts.status)
    assert status["state"] == "completed" and status["error"] is None
    assert status["steps_completed"] == status["total_steps"] == 6 and status["percentage_done"] == 100.0
    assert status["resumed_from"] is None and status["method"] == "lora"
    for key in ("epochs_completed", "best_epoch", "train_loss", "val_loss", "elapsed_seconds", "peak_memory_bytes"):
        assert key in status
    assert status["peak_memory_bytes"] > 0 and status["val_loss"] > 0
    records = _metrics(lora_bundle)
    steps = [r for r in records if r["kind"] == "step"]
    evals = [r for r in records if r["kind"] == "epoch"]
    assert steps and steps[0]["step"] == 1 and all(r["val_loss"] is None for r in steps)
    assert [r["step"] for r in evals] == [5, 6]  # every 5 steps (val_check_interval 0.1) and at the end
    for r in records:
        assert set(r) == {"step", "epoch", "train_loss", "val_loss", "learning_rate", "tokens_per_second", "kind", "time"}
    assert all(r["val_loss"] > 0 for r in evals)
    # cosine towards min_learning_rate (0.1 x lr)
    assert steps[0]["learning_rate"] == pytest.approx(1e-3)
    checkpoints = sorted(p.name for p in (lora_bundle / "run/train/checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-5", "checkpoint-6"]


def test_completion_only_loss_masks_the_prompt(tiny_dir):
    """The trainer's labels cover the completion (and EOS), never the prompt rendered by the template."""
    import datasets
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from runtime.data import splits
    from runtime.recipes.sft import rows
    from runtime.trainer import checkpointing_args

    stage = make_plan("+goal=tone", *TINY).stage("train")
    assert stage.data is not None and stage.prompt is not None
    train, _ = splits(stage.data)
    data, skipped = rows(stage.data, stage.prompt, train[:4])
    assert skipped == 0 and set(data[0]) == {"prompt", "completion"}
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    args = SFTConfig(output_dir="/tmp/unused", report_to="none", use_cpu=True, max_length=256,
                     **checkpointing_args(False))
    from transformers import AutoModelForCausalLM

    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_dir), args=args,
                         train_dataset=datasets.Dataset.from_list(data), processing_class=tok)
    for record, example in zip(data, trainer.train_dataset):
        ids, labels = example["input_ids"], example["labels"]
        masked = tok.decode([i for i, label in zip(ids, labels) if label == -100])
        trained = tok.decode([i for i, label in zip(ids, labels) if label != -100])
        assert masked == "<s>" + record["prompt"]
        assert trained == record["completion"] + "</s>"


def test_full_sft_writes_safetensors_and_tokenizer(tmp_path, tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bundle = _bundle(tmp_path, "method=sft", *FEW)
    assert _run(bundle, "train") == 0
    model_dir = bundle / "run/train/model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()
    assert (model_dir / "tokenizer.json").is_file()
    assert not list(model_dir.glob("*.bin"))  # no pickles
    assert _json(bundle / "run/train/status.json")["state"] == "completed"
    tuned = AutoModelForCausalLM.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    AutoTokenizer.from_pretrained(model_dir)
    diff = max((a - b).abs().max().item() for a, b in zip(tuned.parameters(), base.parameters()))
    assert diff > 0  # the weights moved


def test_train_sft_stage_builds_the_dpo_base(tmp_path, tiny_dir, monkeypatch):
    """train_sft: all weights with Sft's defaults on prompt + chosen, into the stage's model output."""
    from schemas.plan import Plan

    bundle = _bundle(tmp_path, "method=dpo", goal="+goal=safety_alignment")
    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    stage = next(s for s in plan.stages if s.name == "train_sft")
    # Sft's defaults train 10 epochs: too long for a test, so cap the steps of those defaults
    from runtime import train

    original = train.method_for
    monkeypatch.setattr(train, "method_for", lambda p, s: original(p, s).model_copy(update={"max_steps": 3}))
    assert _run(bundle, "train_sft") == 0
    monkeypatch.setattr(train, "method_for", original)
    out = bundle / stage.outputs["model"]
    assert (out / "model.safetensors").is_file()
    status = _json(bundle / "run/train_sft/status.json")
    assert status["state"] == "completed" and status["method"] == "sft" and status["total_steps"] == 3
    assert (bundle / "run/train_sft/metrics.jsonl").is_file()
    # the DPO train stage on this base: tests/runtime/test_preference.py


# ----------------------------------------------------------------------------- failures


def test_non_finite_loss_fails_with_the_step(tmp_path, tiny_dir):
    """A loss that turns nan stops the stage at that step. The schema refuses a learning rate that would diverge
    (above 1), so the nan comes from the checkpoint: the tiny model with a final norm of nan, planned from its
    folder (model=local)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_dir, broken)
    weights = next(broken.glob("*.safetensors"))
    tensors = load_file(weights)
    tensors["model.norm.weight"] = torch.full_like(tensors["model.norm.weight"], float("nan"))
    save_file(tensors, weights, metadata={"format": "pt"})
    from tests.unit.helpers import make_plan

    plan = make_plan("+goal=tone", "model=local", f"model.path={broken}", "inventory=local", "method=lora",
                     "method.max_steps=20")
    bundle = tmp_path / plan.name
    bundle.mkdir()
    (bundle / "plan.json").write_text(plan.model_dump_json(indent=2))
    assert _run(bundle, "train") == 1
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "failed"
    assert "at step" in status["error"] and "loss is" in status["error"]
    assert "nan" in status["error"] or "inf" in status["error"]
    assert "lower method.learning_rate" in status["error"]
    assert not (bundle / "run/train/adapter").exists()


def test_malformed_data_is_skipped_and_validate_data_reports_it(tmp_path, tiny_dir):
    data = tmp_path / "data"
    (data / "training").mkdir(parents=True)
    (data / "validation").mkdir()
    good = [json.loads(line) for line in (ROOT / "conf/samples/tone/training/tone.jsonl").read_text().splitlines()]
    lines = [json.dumps(r) for r in good[:40]]
    lines[3] = '{"prompt": "broken json'
    lines[7] = json.dumps({"prompt": "no completion here"})
    lines[11] = json.dumps({"prompt": "a number", "completion": 42})
    lines[15] = "[1, 2, 3]"
    (data / "training" / "part.jsonl").write_text("\n".join(lines) + "\n")
    (data / "validation" / "part.jsonl").write_text("\n".join(json.dumps(r) for r in good[40:50]) + "\n")
    bundle = _bundle(tmp_path / "b", "method=lora", f"data.path={data}", "method.max_steps=3")
    assert _run(bundle, "validate_data") == 1
    report = _json(bundle / "run/validate_data/report.json")
    assert "part.jsonl:4" in json.dumps(report["errors"])
    assert _run(bundle, "train") == 0
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["steps_completed"] == 3


def test_the_trained_hyperparameters_are_the_ones_the_planner_estimated():
    """method=auto: the customization config's recommended values for the chosen rung, written in the plan;
    changing the spec afterwards changes nothing the runtime reads."""
    from runtime.train import method_for

    plan = make_plan("+goal=tone", *TINY)
    assert plan.spec.method.kind == "auto" and plan.decision.method == "lora"
    method = method_for(plan, "train")
    assert method.kind == "lora" and method.learning_rate == 4e-3 and method.epochs == 10
    model = plan.spec.model
    configs = tuple(c.model_copy(update={"defaults": {"lora": {"learning_rate": 5e-4, "epochs": 3}}})
                    for c in model.configs)
    edited = plan.model_copy(update={"spec": plan.spec.model_copy(update={"model": model.model_copy(
        update={"configs": configs})})})
    assert method_for(edited, "train") == method
    explicit = make_plan("+goal=tone", *TINY, "method=lora", "method.learning_rate=2e-4")
    assert method_for(explicit, "train").learning_rate == 2e-4
    assert method_for(explicit, "train").lora.adapter_dim == 16  # the rest of the recipe stays


def test_dpo_and_grpo_plans_resolve_their_methods():
    """train dispatches dpo / grpo to runtime.recipes.dpo / runtime.recipes.grpo (tests/runtime/test_preference.py,
    test_grpo.py) with the hyperparameters the planner estimated."""
    from runtime.train import method_for

    assert method_for(make_plan("+goal=math_reasoning", *TINY, "method=grpo"), "train").kind == "grpo"
    plan = make_plan("+goal=safety_alignment", *TINY, "method=dpo")
    assert method_for(plan, "train").kind == "dpo" and method_for(plan, "train_sft").kind == "sft"


# ----------------------------------------------------------------------------- resume, SIGTERM


@pytest.mark.parametrize("extra", [(), ('method.replay={data: "builtin:general", ratio: 3}',)],
                         ids=["plain", "replay"])
def test_resume_after_sigkill_finishes_the_planned_steps(tmp_path, tiny_dir, extra):
    bundle = _bundle(tmp_path, "method=lora", "method.max_steps=40", "method.val_check_interval=0.2", *extra)
    proc = _popen(bundle)
    first = _wait_for_checkpoint(bundle, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    killed = _json(bundle / "run/train/status.json")
    assert killed["state"] == "running"  # SIGKILL: no chance to record anything
    assert killed["steps_completed"] < 40
    rerun = _popen(bundle)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["attempts"] == 2
    assert status["resumed_from"] is not None and status["resumed_from"].startswith("checkpoint-")
    resumed_at = int(status["resumed_from"].split("-")[1])
    assert 10 <= resumed_at < 40 and resumed_at >= int(first.name.split("-")[1])
    assert f"resumed from {status['resumed_from']}" in out
    assert status["steps_completed"] == status["total_steps"] == 40
    steps = [r["step"] for r in _metrics(bundle) if r["kind"] == "step"]
    assert steps == sorted(set(steps))  # the killed attempt's lines after the checkpoint were dropped
    assert (bundle / "run/train/adapter/adapter_model.safetensors").is_file()


def test_sigterm_saves_a_checkpoint_and_ends_cancelled(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "method=lora", "method.max_steps=200", "method.val_check_interval=0.2")
    proc = _popen(bundle)
    _wait_for_checkpoint(bundle, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "cancelled"
    step = status["steps_completed"]
    assert 0 < step < 200
    assert f"checkpoint saved at step {step}" in status["error"]
    assert (bundle / f"run/train/checkpoints/checkpoint-{step}/trainer_state.json").is_file()
    assert not (bundle / "run/train/adapter").exists()


# ----------------------------------------------------------------------------- publish


def _gate(bundle: Path, verdict: str) -> None:
    gate = bundle / "run/gate/gate.json"
    gate.parent.mkdir(parents=True, exist_ok=True)
    gate.write_text(json.dumps({"verdict": verdict, "reasons": ["rouge_l improved"] if verdict == "pass"
                                else ["target not reached: rouge_l 0.41 < 0.60"], "metric": "rouge_l",
                                "improvement": 0.1, "baseline": {"task_score": 0.3}, "tuned": {"task_score": 0.4}}))


def test_publish_refuses_without_a_passing_gate(lora_bundle, tmp_path):
    import shutil

    bundle = tmp_path / lora_bundle.name
    shutil.copytree(lora_bundle, bundle)
    shutil.rmtree(bundle / "run/gate", ignore_errors=True)
    assert _run(bundle, "publish") == 1
    assert "no gate verdict" in _json(bundle / "run/publish/status.json")["error"]
    _gate(bundle, "fail")
    assert _run(bundle, "publish") == 1
    error = _json(bundle / "run/publish/status.json")["error"]
    assert "gate did not pass" in error and "target not reached" in error
    assert not any((bundle / "run/publish").glob("default__*"))


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_published_adapter_loads_and_changes_the_outputs(lora_bundle, tiny_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from schemas.plan import Plan

    _gate(lora_bundle, "pass")
    assert _run(lora_bundle, "publish") == 0
    plan = Plan.model_validate_json((lora_bundle / "plan.json").read_text())
    published = lora_bundle / plan.artifacts.published_dir
    assert sorted(p.name for p in published.iterdir()) == ["README.md", "adapter_config.json",
                                                           "adapter_model.safetensors", "model_card.json"]
    # what a server and the Hub accept: readable by everyone, no path of this machine, a model card with metadata
    assert {oct(p.stat().st_mode & 0o777) for p in published.iterdir()} == {"0o644"}
    assert oct(published.stat().st_mode & 0o777) == "0o755"
    assert _json(published / "adapter_config.json")["base_model_name_or_path"] == "tiny-llama"
    readme = (published / "README.md").read_text()
    front = readme.split("---\n")[1]
    assert readme.startswith("---\n") and front.startswith("base_model: tiny-llama  # built by this project")
    import yaml

    meta = yaml.safe_load(front)
    assert meta["library_name"] == "peft" and {"lora", "peft", "tone"} <= set(meta["tags"])
    assert meta["model-index"][0]["results"][0]["metrics"][0] == {"name": "rouge_l (tuned)", "type": "rouge_l",
                                                                  "value": 0.4}
    card = _json(published / "model_card.json")
    assert card["name"] == plan.artifacts.output_model and card["plan_id"] == plan.id
    assert card["method"] == "lora" and card["base_model"]["name"] == "tiny-llama"
    assert card["data"]["name"] == "tone" and card["metrics"]["steps"] == 6
    assert card["gate"]["verdict"] == "pass" and card["format"] == "peft-lora"

    base = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    ids = torch.tensor([[1, 470, 28, 201, 4051, 300, 301]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), published).eval()
        after = tuned(input_ids=ids).logits
    assert (after - before).abs().max().item() > 1e-3


def _published_with(lora_bundle: Path, root: Path, *overrides: str) -> Path:
    """A bundle of the lora_bundle's plan plus `overrides` (publish options: a plan of its own), holding the
    lora_bundle's trained adapter."""
    import shutil

    bundle = _bundle(root, "method=lora", *FEW, "method.learning_rate=1e-3", "method.warmup_steps=0", *overrides)
    shutil.copytree(lora_bundle / "run/train", bundle / "run/train")
    return bundle


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_publish_merge_writes_merged_safetensors_next_to_the_adapter(lora_bundle, tmp_path, tiny_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from schemas.plan import Plan

    bundle = _published_with(lora_bundle, tmp_path, "publish.merge=true")
    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    assert plan.spec.publish.merge  # the plan carries it; publish reads it there
    _gate(bundle, "pass")
    assert _run(bundle, "publish") == 0
    published = bundle / plan.artifacts.published_dir
    merged = published / "merged"
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    assert (merged / "tokenizer.json").is_file() or (merged / "tokenizer_config.json").is_file()
    assert {oct(p.stat().st_mode & 0o777) for p in merged.iterdir()} == {"0o644"}
    assert oct(merged.stat().st_mode & 0o777) == "0o755"
    assert _json(published / "model_card.json")["merged"] == "merged"
    ids = torch.tensor([[1, 470, 28, 201, 4051, 300, 301]])
    with torch.no_grad():
        adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), published).eval()
        whole = AutoModelForCausalLM.from_pretrained(merged).eval()
        assert torch.allclose(adapted(input_ids=ids).logits, whole(input_ids=ids).logits, atol=1e-4)


def test_publish_push_to_hub_refuses_without_a_token(lora_bundle, tmp_path, monkeypatch):
    from schemas.plan import Plan

    bundle = _published_with(lora_bundle, tmp_path, "publish.push_to_hub=my-org/tone-adapter")
    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    _gate(bundle, "pass")
    assert _run(bundle, "publish") == 1
    error = _json(bundle / "run/publish/status.json")["error"]
    assert "publish.push_to_hub=my-org/tone-adapter: no Hugging Face token" in error and "export HF_TOKEN" in error
    assert (bundle / plan.artifacts.published_dir / "README.md").is_file()  # the local copy is written first


def test_publish_full_model_adds_the_serving_note(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "method=sft", "method.max_steps=2")
    assert _run(bundle, "train") == 0
    _gate(bundle, "pass")
    assert _run(bundle, "publish") == 0
    from schemas.plan import Plan

    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    published = bundle / plan.artifacts.published_dir
    assert (published / "model.safetensors").is_file() and (published / "config.json").is_file()
    assert "serving deployment" in (published / "NOTE.md").read_text()
    assert _json(published / "model_card.json")["format"] == "safetensors"


def test_cpu_loss_path_equals_trls_fused_loss(tmp_path, tiny_dir):
    """On CPU the train stage computes the loss from the full logits instead of TRL's tiled LM head (3x
    faster there): the same loss on the same batch, and the same tokens counted."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from runtime.recipes.sft import trainer_class
    from runtime.trainer import checkpointing_args

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    rows = [{"prompt": f"From: Ann Berg {i}\nReply:", "completion": f" Dear Ann, thank you for order {i}{i}."}
            for i in range(8)]
    args = SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True, report_to="none",
                     max_length=64, disable_tqdm=True, **checkpointing_args(False))
    trainer = trainer_class()(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                              processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    trained = int((batch["labels"] != -100).sum())
    assert 0 < trained < int(batch["attention_mask"].sum())  # the prompts are masked out of the loss
    trainer.model.train()
    plain = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=trained)
    fused = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch), num_items_in_batch=trained)
    assert plain.item() == pytest.approx(fused.item(), rel=1e-5)
    assert trainer.tokens_seen == int(batch["attention_mask"].sum())
