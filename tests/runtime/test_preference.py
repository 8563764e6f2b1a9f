"""train (method dpo) on tiny-llama (CPU): DPOTrainer from the plan, on the train_sft base, with the
three kinds of reference (a frozen copy, LoRA adapters disabled, precomputed log-probs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.helpers import TINY, write_bundle
from tests.runtime.helpers import read_json as _json
from tests.runtime.helpers import read_metrics as _metrics
from tests.runtime.helpers import run_stage as _run
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]
GOAL = "+goal=safety_alignment"
PREFERENCE = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def _bundle(root: Path, *overrides: str) -> Path:
    return write_bundle(root, GOAL, *overrides)


def _pairs(n: int = 48) -> list[dict]:
    lines = (ROOT / "conf/samples/safety_alignment/training/safety_alignment.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[:n]]


def _margins(model_dir: Path, pairs: list[dict], adapter: Path | None = None) -> tuple[float, float]:
    """(preference accuracy, mean log-prob margin chosen - rejected) of the model on `pairs`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()

    def logp(prompt: str, completion: str) -> float:
        head = tok(prompt.rstrip(" "), add_special_tokens=True)["input_ids"]
        full = tok(prompt.rstrip(" ") + " " + completion, add_special_tokens=True)["input_ids"]
        ids = torch.tensor([full])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].float()
        logprobs = torch.log_softmax(logits, -1).gather(1, ids[0, 1:, None])[:, 0]
        return float(logprobs[len(head) - 1:].sum())

    deltas = [logp(p["prompt"], p["chosen"]) - logp(p["prompt"], p["rejected"]) for p in pairs]
    return sum(d > 0 for d in deltas) / len(deltas), sum(deltas) / len(deltas)


def test_preference_rows_read_nemo_fields_and_skip_incomplete_pairs():
    from runtime.recipes.dpo import preference_rows

    plan = make_plan(GOAL, *TINY, "method=dpo")
    records = [{"prompt": "Q?\nAssistant:\n", "chosen_response": "good", "rejected_response": "bad"},
               {"prompt": "Q?", "chosen": "good", "rejected": "bad"},
               {"prompt": "Q?", "chosen": "good"}]
    rows, skipped = preference_rows(plan.stage("train").prompt, records)
    assert skipped == 1
    assert rows[0] == {"prompt": "Q?\nAssistant:\n", "chosen": " good", "rejected": " bad"}
    assert rows[1]["chosen"] == " good" and rows[1]["rejected"] == " bad"


def test_dpo_on_the_sft_base_raises_the_margin_on_training_pairs(tmp_path, tiny_dir, monkeypatch):
    """train_sft (3 steps) -> train (dpo, all weights, reference copy): starts from run/train_sft/model,
    logs the preference metrics, and the chosen-rejected log-prob margin on training pairs rises."""
    from runtime import train

    bundle = _bundle(tmp_path, "method=dpo", "++method.max_steps=20", "method.learning_rate=2e-5")
    original = train.method_for
    monkeypatch.setattr(train, "method_for",
                        lambda p, s: original(p, s).model_copy(update={"max_steps": 3}) if s == "train_sft"
                        else original(p, s))
    assert _run(bundle, "train_sft") == 0
    base = bundle / "run/train_sft/model"
    pairs = _pairs()
    acc_before, margin_before = _margins(base, pairs)

    assert _run(bundle, "train") == 0
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["method"] == "dpo"
    assert status["reference"] == "copy" and status["steps_completed"] == 20 and status["percentage_done"] == 100.0
    acc_after, margin_after = _margins(bundle / "run/train/model", pairs)
    assert margin_after > margin_before  # robust: 20 steps at 2e-5 move it by a few nats
    assert acc_after >= acc_before

    lines = _metrics(bundle)
    steps = [r for r in lines if r["kind"] == "step"]
    assert steps and all(k in steps[-1] for k in PREFERENCE)
    assert steps[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert steps[-1]["rewards/margins"] > 0
    epoch = [r for r in lines if r["kind"] == "epoch"]
    assert epoch and epoch[-1]["val_loss"] is not None and "eval_rewards/margins" in epoch[-1]

    # the gate's figure of this bundle: the SFT base stage and DPO on one figure, DPO judged by its margins
    from runtime.gate.plot import plot_curves
    from runtime.gate.stage import training_curves
    from schemas.plan import Plan

    stages = training_curves(Plan.model_validate_json((bundle / "plan.json").read_text()), lambda p: bundle / p)
    assert [(s.name, s.kind) for s in stages] == [("train_sft", "sft"), ("train", "dpo")]
    assert stages[0].records and stages[1].records == lines
    fig = plot_curves(stages, tmp_path / "curves.png")
    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(axes) == {"train_sft (sft): loss", "train (dpo): loss", "train (dpo): reward margin and accuracy"}
    assert "train loss" in {line.get_label() for line in axes["train_sft (sft): loss"].get_lines()}
    prefs = {line.get_label(): line for line in axes["train (dpo): reward margin and accuracy"].get_lines()}
    assert list(prefs["reward margin (train)"].get_ydata()) == pytest.approx([r["rewards/margins"] for r in steps])
    assert "reward margin (val)" in prefs
    best = [label for label in prefs if label.startswith("best checkpoint")]
    assert best and "lowest val loss" in best[0]
    [twin] = [ax for ax in fig.axes if ax.get_ylabel() == "preference accuracy"]
    assert {line.get_label() for line in twin.get_lines()} >= {"accuracy (train)", "accuracy (val)"}


def test_dpo_lora_with_adapters_disabled_and_sft_loss(tmp_path, tiny_dir):
    """finetuning_type lora (reference: the adapter switched off), an SFT base given as method.sft_base
    (no train_sft stage), and the SFT term on the chosen answers (sft_loss_weight)."""
    bundle = _bundle(tmp_path, "method=dpo", "++method.finetuning_type=lora", f"++method.sft_base={tiny_dir}",
                     "++method.sft_loss_weight=0.5", "++method.max_steps=6", "method.learning_rate=1e-3")
    plan = json.loads((bundle / "plan.json").read_text())
    assert "train_sft" not in [s["name"] for s in plan["stages"]]
    assert _run(bundle, "train") == 0
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["reference"] == "adapters_disabled"
    adapter = bundle / plan["artifacts"]["adapter_dir"]
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    lines = _metrics(bundle)
    steps = [r for r in lines if r["kind"] == "step"]
    assert len(steps) > 1 and steps[-1]["rewards/margins"] > 0
    assert [r for r in lines if r["kind"] == "epoch"][-1]["eval_rewards/margins"] > 0


def test_dpo_with_precomputed_reference_log_probs(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "method=dpo", "++method.reference=precomputed", f"++method.sft_base={tiny_dir}",
                     "++method.max_steps=4", "method.learning_rate=2e-5")
    assert _run(bundle, "train") == 0
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["reference"] == "precomputed"
    assert (bundle / "run/train/model/model.safetensors").is_file()
    steps = [r for r in _metrics(bundle) if r["kind"] == "step"]
    assert all(k in steps[-1] for k in PREFERENCE)
