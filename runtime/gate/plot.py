"""The gate's training-curve figure: every training stage of the plan on one figure, one row per stage in pipeline
order, each with the curves that say whether that stage learned (matplotlib, Agg backend):

* sft / lora: train and val loss;
* dpo / kto: the loss, and the reward margin (chosen - rejected) with the preference accuracy (DPO) beside it;
* grpo: the reward, its mean with a band of one standard deviation over each step's generations (and the eval
  reward per epoch), beside the loss (which, with zero-mean advantages, says little about convergence).

Each stage's best checkpoint, the one early stopping keeps (lowest val loss; highest eval reward for GRPO, as the
trainer's metric_for_best_model), is a dotted line on each of its panels. The figure is returned for inspection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.gate.verdict import curves

TRAIN, VAL, BEST, ACC = "#1f77b4", "#d62728", "#2ca02c", "#9467bd"


@dataclass(frozen=True)
class StageCurves:
    """One training stage's metrics.jsonl records, with the stage's name and method kind."""

    name: str  # train_sft | train
    kind: str  # sft | lora | dpo | kto | grpo
    records: list[dict]


def series(records: list[dict], key: str, kind: str) -> list[tuple[int, float]]:
    """(step, value) of `key` in the records of `kind` (step | epoch), finite numbers only."""
    out = []
    for r in records:
        value, step = r.get(key), r.get("step")
        if r.get("kind") != kind or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(step, int) and math.isfinite(value):
            out.append((step, float(value)))
    return out


def best_checkpoint(stage: StageCurves) -> tuple[int, float | None, str] | None:
    """(step, epoch, what) of the checkpoint early stopping keeps: the lowest val loss, or for GRPO the highest eval
    reward (its metric_for_best_model); None without validation."""
    grpo = stage.kind == "grpo"
    key, sign = ("eval_reward", -1.0) if grpo else ("val_loss", 1.0)
    scored = [
        (sign * float(r[key]), r)
        for r in stage.records
        if r.get("kind") == "epoch" and _finite(r.get(key)) and isinstance(r.get("step"), int)
    ]
    if not scored:
        return None
    _, best = min(scored, key=lambda vr: vr[0])  # the first of equals, as the trainer keeps it
    epoch = best.get("epoch")
    at = float(epoch) if isinstance(epoch, (int, float)) and _finite(epoch) else None
    return best["step"], at, "highest eval reward" if grpo else "lowest val loss"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _xy(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [s for s, _ in points], [v for _, v in points]


def _mark_best(ax: Any, stage: StageCurves) -> None:
    best = best_checkpoint(stage)
    if best is not None:
        step, epoch, what = best
        at = f"epoch {epoch:g}, " if epoch is not None else ""
        ax.axvline(step, color=BEST, ls=":", lw=1.3, label=f"best checkpoint ({at}step {step}: {what})")


def _loss(ax: Any, stage: StageCurves) -> bool:
    train, val = curves(stage.records)
    if train:
        ax.plot(*_xy(train), label="train loss", color=TRAIN, lw=1.4)
    if val:
        ax.plot(*_xy(val), label="val loss", color=VAL, lw=1.6, marker="o", ms=3.5)
    ax.set_ylabel("loss")
    return False


def _preference(ax: Any, stage: StageCurves) -> bool:
    """The reward margin (left axis) and, where the trainer logs it, the preference accuracy (right axis, 0-1), with
    one legend for both, on the twin (drawn last, so no curve crosses it). True: the legend is made."""
    margins = (
        ("rewards/margins", "step", "reward margin (train)", TRAIN, {"lw": 1.4}),
        ("eval_rewards/margins", "epoch", "reward margin (val)", VAL, {"lw": 1.6, "marker": "o", "ms": 3.5}),
    )
    for key, kind, label, color, style in margins:
        points = series(stage.records, key, kind)
        if points:
            ax.plot(*_xy(points), label=label, color=color, **style)
    ax.set_ylabel("reward margin (chosen - rejected)")
    accuracies = (
        ("rewards/accuracies", "step", "accuracy (train)", "--"),
        ("eval_rewards/accuracies", "epoch", "accuracy (val)", "-."),
    )
    found = [(label, ls, points) for key, kind, label, ls in accuracies if (points := series(stage.records, key, kind))]
    if not found:
        return False
    twin = ax.twinx()
    for label, ls, points in found:
        twin.plot(*_xy(points), label=label, color=ACC, ls=ls, lw=1.3)
    twin.set_ylim(-0.05, 1.05)
    twin.set_ylabel("preference accuracy")
    handles, labels = ax.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    twin.legend(handles + more, labels + more_labels, fontsize=7, loc="best")
    return True


def _reward(ax: Any, stage: StageCurves) -> bool:
    """The mean reward per step with a band of one standard deviation, and the eval reward per epoch."""
    mean = dict(series(stage.records, "reward", "step"))
    std = dict(series(stage.records, "reward_std", "step"))
    steps = sorted(mean)
    if steps:
        ax.plot(steps, [mean[s] for s in steps], label="reward mean (train)", color=TRAIN, lw=1.4)
        banded = [s for s in steps if s in std]
        if banded:
            ax.fill_between(
                banded,
                [mean[s] - std[s] for s in banded],
                [mean[s] + std[s] for s in banded],
                color=TRAIN,
                alpha=0.2,
                label="reward ± 1 std (train)",
            )
    val = series(stage.records, "eval_reward", "epoch")
    if val:
        ax.plot(*_xy(val), label="reward mean (val)", color=VAL, lw=1.6, marker="o", ms=3.5)
    ax.set_ylabel("reward")
    return False


# what each panel of a stage's row draws, by method kind: (panel title, how; True when it made the legend itself)
PANELS = {
    "sft": (("loss", _loss),),
    "lora": (("loss", _loss),),
    "dpo": (("loss", _loss), ("reward margin and accuracy", _preference)),
    "kto": (("loss", _loss), ("reward margin", _preference)),
    "grpo": (("reward (mean ± std)", _reward), ("loss", _loss)),
}


def plot_curves(stages: list[StageCurves], path: Path | None = None, title: str = "") -> Any:
    """Every stage's curves on one figure (a row per stage; a one-panel row spans the width), the best checkpoint
    marked on each panel; saved as a PNG at `path` when given. Returns the (closed) matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in stages if s.records]
    width = max((len(PANELS.get(s.kind, PANELS["sft"])) for s in rows), default=1)
    fig = plt.figure(figsize=(7.5 * width, 3.6 * max(1, len(rows))), dpi=100)
    try:
        grid = fig.add_gridspec(max(1, len(rows)), width)
        for i, stage in enumerate(rows):
            panels = PANELS.get(stage.kind, PANELS["sft"])
            for j, (what, draw) in enumerate(panels):
                ax = fig.add_subplot(grid[i, j] if len(panels) > 1 else grid[i, :])
                _mark_best(ax, stage)
                legend_made = draw(ax, stage)
                ax.set_title(f"{stage.name} ({stage.kind}): {what}", fontsize=10)
                ax.set_xlabel("step")
                ax.grid(alpha=0.3)
                if not legend_made and ax.get_legend_handles_labels()[0]:
                    ax.legend(fontsize=7, loc="best")
        if title:
            fig.suptitle(title, fontsize=11)
        fig.tight_layout()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path)
    finally:
        plt.close(fig)
    return fig
