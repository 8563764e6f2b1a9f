"""The gate's loss-curve plot: train and val loss against step as a PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

from runtime.gate.verdict import curves


def plot_losses(records: list[dict], path: Path, title: str = "") -> Path:
    """Train and val loss against step, as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = curves(records)
    fig, ax = plt.subplots(figsize=(7.5, 4.0), dpi=110)
    try:
        if train:
            ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="#1f77b4", lw=1.4)
        if val:
            ax.plot(
                [s for s, _ in val], [v for _, v in val], label="val loss", color="#d62728", lw=1.6, marker="o", ms=3.5
            )
            finite = [(s, v) for s, v in val if math.isfinite(v)]
            if finite:
                best = min(finite, key=lambda sv: sv[1])
                ax.axvline(best[0], color="#d62728", ls=":", lw=1, label=f"best val (step {best[0]})")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if title:
            ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
