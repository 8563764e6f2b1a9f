"""The gate's training-curve figure on synthetic metrics.jsonl records (matplotlib, no torch): one row per stage,
the curves each method kind is judged by, the best checkpoint marked on every panel of its stage."""

from __future__ import annotations

import pytest

from runtime.gate.plot import StageCurves, best_checkpoint, plot_curves

pytest.importorskip("matplotlib")


def step(i: int, loss: float, **extra) -> dict:
    return {"kind": "step", "step": i, "epoch": i / 10, "train_loss": loss, "val_loss": None, **extra}


def epoch(i: int, val: float, **extra) -> dict:
    return {"kind": "epoch", "step": 10 * i, "epoch": i, "train_loss": 2.0, "val_loss": val, **extra}


SFT = StageCurves("train_sft", "sft", [*(step(i, 3.0 - 0.1 * i) for i in range(1, 21)), epoch(1, 2.5), epoch(2, 2.6)])
DPO = StageCurves(
    "train",
    "dpo",
    [
        *(
            step(i, 0.69 - 0.01 * i, **{"rewards/margins": 0.05 * i, "rewards/accuracies": min(1.0, 0.5 + 0.05 * i)})
            for i in range(1, 31)
        ),
        epoch(1, 0.60, **{"eval_rewards/margins": 0.4, "eval_rewards/accuracies": 0.7}),
        epoch(2, 0.55, **{"eval_rewards/margins": 0.8, "eval_rewards/accuracies": 0.8}),
        epoch(3, 0.58, **{"eval_rewards/margins": 0.9, "eval_rewards/accuracies": 0.8}),
    ],
)
GRPO = StageCurves(
    "train",
    "grpo",
    [
        *(step(i, 0.0, reward=0.1 * i, reward_std=0.05) for i in range(1, 21)),
        epoch(1, 0.01, eval_reward=0.9),
        epoch(2, 0.01, eval_reward=1.4),
    ],
)


def axes_by_title(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def labels(ax) -> set[str]:
    return {line.get_label() for line in ax.get_lines()}


def best_line(ax):
    [line] = [line for line in ax.get_lines() if line.get_label().startswith("best checkpoint")]
    return line


def test_sft_then_dpo_on_one_figure(tmp_path):
    png = tmp_path / "curves.png"
    fig = plot_curves([SFT, DPO], png, title="safety: sft -> dpo")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert fig._suptitle.get_text() == "safety: sft -> dpo"
    ax = axes_by_title(fig)
    assert set(ax) == {"train_sft (sft): loss", "train (dpo): loss", "train (dpo): reward margin and accuracy"}
    assert {"train loss", "val loss"} <= labels(ax["train_sft (sft): loss"])
    assert {"train loss", "val loss"} <= labels(ax["train (dpo): loss"])
    prefs = ax["train (dpo): reward margin and accuracy"]
    assert {"reward margin (train)", "reward margin (val)"} <= labels(prefs)
    margins = next(line for line in prefs.get_lines() if line.get_label() == "reward margin (train)")
    assert list(margins.get_ydata()) == pytest.approx([0.05 * i for i in range(1, 31)])
    # the accuracies on a twin axis from 0 to 1, in the panel's legend
    [twin] = [a for a in fig.axes if not a.get_title() and a.get_ylabel() == "preference accuracy"]
    assert labels(twin) == {"accuracy (train)", "accuracy (val)"}
    assert twin.get_ylim() == pytest.approx((-0.05, 1.05))
    assert prefs.get_legend() is None  # one legend for both axes, on the twin (drawn over the curves)
    legend = {t.get_text() for t in twin.get_legend().get_texts()}
    assert {"accuracy (train)", "reward margin (val)"} <= legend and any(x.startswith("best") for x in legend)
    # best checkpoints: SFT at its epoch 1 (step 10, val 2.5), DPO at epoch 2 (step 20, val 0.55), on every panel
    assert best_line(ax["train_sft (sft): loss"]).get_xdata()[0] == 10
    for title in ("train (dpo): loss", "train (dpo): reward margin and accuracy"):
        line = best_line(ax[title])
        assert line.get_xdata()[0] == 20 and "epoch 2, step 20: lowest val loss" in line.get_label()
    # rows in pipeline order; the one-panel SFT row spans the width of the DPO row's two
    sft, dpo_loss = ax["train_sft (sft): loss"].get_position(), ax["train (dpo): loss"].get_position()
    assert sft.y0 > dpo_loss.y0 and sft.width > 1.8 * dpo_loss.width


def test_grpo_shows_the_reward_mean_with_its_spread_and_the_best_eval_reward():
    fig = plot_curves([GRPO])
    ax = axes_by_title(fig)
    assert set(ax) == {"train (grpo): reward (mean ± std)", "train (grpo): loss"}
    reward = ax["train (grpo): reward (mean ± std)"]
    assert {"reward mean (train)", "reward mean (val)"} <= labels(reward)
    [band] = [c for c in reward.collections if c.get_label() == "reward ± 1 std (train)"]
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(0.1 - 0.05) and max(ys) == pytest.approx(2.0 + 0.05)
    # GRPO keeps the highest eval reward (metric_for_best_model=eval_reward), not the lowest loss
    line = best_line(reward)
    assert line.get_xdata()[0] == 20 and "highest eval reward" in line.get_label()
    assert best_checkpoint(GRPO) == (20, 2.0, "highest eval reward")


def test_without_validation_nothing_is_marked_and_empty_stages_are_left_out():
    no_val = StageCurves("train", "lora", [step(i, 2.0 - 0.01 * i) for i in range(1, 6)])
    fig = plot_curves([StageCurves("train_sft", "sft", []), no_val])
    assert list(axes_by_title(fig)) == ["train (lora): loss"]
    assert best_checkpoint(no_val) is None
    assert not [line for line in fig.axes[0].get_lines() if line.get_label().startswith("best")]
