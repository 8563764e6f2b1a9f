"""train (method grpo) on tiny-llama (CPU): GRPOTrainer from the plan, rewards from runtime.rewards
scored on the model's real generations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime import rewards
from tests.runtime.helpers import read_json as _json
from tests.runtime.helpers import read_metrics as _metrics
from tests.runtime.helpers import run_stage, write_bundle
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]
GOAL = "+goal=math_reasoning"


def _bundle(root: Path, *overrides: str) -> Path:
    return write_bundle(root, GOAL, "method=grpo", "method.cold_start_sft=false", *overrides)


def _run(bundle: Path) -> int:
    return run_stage(bundle, "train")


def _answers() -> set[str]:
    out = set()
    for split in ("training", "validation"):
        for line in (ROOT / f"conf/samples/math_reasoning/{split}/math_reasoning.jsonl").read_text().splitlines():
            out.add(str(json.loads(line)["answer"]))
    return out


def test_grpo_scores_real_generations_with_the_registered_rewards(tmp_path, tiny_dir, monkeypatch):
    seen: list[tuple[str, str | None, float]] = []
    real = rewards.REWARDS["numeric_match"]

    def spy(completion: str, reference: str | None) -> float:
        score = real(completion, reference)
        seen.append((completion, reference, score))
        return score

    monkeypatch.setitem(rewards.REWARDS, "numeric_match", spy)
    bundle = _bundle(tmp_path, "++method.max_steps=4", "++method.num_generations_per_prompt=4",
                     "++method.max_completion_length=24", "++method.rewards=[numeric_match,format]")
    assert _run(bundle) == 0
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["method"] == "grpo" and status["steps_completed"] == 4
    assert status["rewards"] == ["numeric_match", "format"]
    assert (bundle / "run/train/model/model.safetensors").is_file()

    # micro batch 8 = 2 prompts x 4 generations per step, 4 steps (plus the validation prompts' generations)
    assert len(seen) >= 4 * 8
    assert any(c.strip() for c, _, _ in seen)  # the model's own text, not placeholders
    assert {r for _, r, _ in seen} <= _answers()  # the reference is the record's answer
    lines = _metrics(bundle)
    steps = [r for r in lines if r["kind"] == "step"]
    assert len(steps) >= 2
    for key in ("reward", "reward_std", "rewards/numeric_match/mean", "rewards/format/mean",
                "completions/mean_length"):
        assert key in steps[-1], key
    assert 0.0 <= steps[-1]["rewards/numeric_match/mean"] <= 1.0
    assert 0 < steps[-1]["completions/mean_length"] <= 24
    epoch = [r for r in lines if r["kind"] == "epoch"]
    assert epoch and "eval_reward" in epoch[-1]

    # the gate's figure: GRPO judged by its reward, the mean with a band of one std, the best eval reward marked
    from runtime.gate.plot import plot_curves
    from runtime.gate.stage import training_curves
    from schemas.plan import Plan

    stages = training_curves(Plan.model_validate_json((bundle / "plan.json").read_text()), lambda p: bundle / p)
    assert [(s.name, s.kind) for s in stages] == [("train", "grpo")]
    fig = plot_curves(stages, tmp_path / "curves.png")
    axes = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert set(axes) == {"train (grpo): reward (mean ± std)", "train (grpo): loss"}
    reward = axes["train (grpo): reward (mean ± std)"]
    drawn = {line.get_label(): line for line in reward.get_lines()}
    assert list(drawn["reward mean (train)"].get_ydata()) == pytest.approx([r["reward"] for r in steps])
    assert "reward mean (val)" in drawn
    [band] = [c for c in reward.collections if c.get_label() == "reward ± 1 std (train)"]
    low = min(r["reward"] - r["reward_std"] for r in steps)
    assert min(band.get_paths()[0].vertices[:, 1]) == pytest.approx(low)
    assert any(label.startswith("best checkpoint") and "highest eval reward" in label for label in drawn)


def test_grpo_lora_with_a_kl_reference(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "++method.finetuning_type=lora", "++method.kl_beta=0.04", "++method.max_steps=3",
                     "++method.num_generations_per_prompt=4", "++method.max_completion_length=16",
                     r"++method.rewards=[regex:\d]", "method.learning_rate=1e-4")
    assert _run(bundle) == 0
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["finetuning_type"] == "lora"
    plan = _json(bundle / "plan.json")
    assert (bundle / plan["artifacts"]["adapter_dir"] / "adapter_model.safetensors").is_file()
    steps = [r for r in _metrics(bundle) if r["kind"] == "step"]
    assert "kl" in steps[-1] and "rewards/regex_d/mean" in steps[-1]


def test_an_unknown_reward_is_refused_before_any_stage_runs():
    """The schema knows the registered rewards: a typo stops at plan time (exit 2), not in the GRPO job."""
    from planner.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown reward 'nonsense'"):
        make_plan("+goal=math_reasoning", "model=tiny-llama", "inventory=local", "method=grpo",
                  "method.rewards=[nonsense]")
