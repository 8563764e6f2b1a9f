"""Paired statistics for the gate, pure (no torch, no numpy, no I/O): how sure a baseline-vs-tuned difference is.

Both evaluations score the same items in the same order, so the difference is measured item by item: the paired
bootstrap resamples items (with replacement, a fixed seed, so the same scores give the same interval) and takes
the 2.5th and 97.5th percentiles of the mean difference. On right/wrong items most items agree; only the ones that
flipped move the mean, and the interval is as wide as the number of flips says it must be: 2 flips out of 100 give
a drop of 2 points with an interval from about -1 to 5, which decides nothing.

Without per-item results (an lm_eval task that kept no samples, scores from an older runtime) the interval is
the normal approximation for two independent proportions: wider than the paired one (it ignores that the same
items were asked), so a verdict drawn from it is the cautious one, and its method says so.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

SEED = 0
RESAMPLES = 2000
PAIRED = "paired bootstrap"
UNPAIRED = "normal approximation, unpaired (no per-item results)"


def paired_bootstrap(
    before: Sequence[float], after: Sequence[float], *, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float, float]:
    """(mean of before - after, 2.5th percentile, 97.5th percentile) over items resampled with replacement."""
    if len(before) != len(after) or not before:
        raise ValueError(f"paired items: {len(before)} before against {len(after)} after")
    diffs = [float(b) - float(a) for b, a in zip(before, after, strict=True)]
    n = len(diffs)
    point = sum(diffs) / n
    if all(d == diffs[0] for d in diffs):  # every resample has the same mean
        return point, point, point
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    return point, _percentile(means, 0.025), _percentile(means, 0.975)


def unpaired_normal(before: float, after: float, n_before: int, n_after: int) -> tuple[float, float, float]:
    """(before - after, lower, upper) of a 95% normal interval for two independent proportions."""
    se = math.sqrt(
        before * (1 - before) / max(n_before, 1) + after * (1 - after) / max(n_after, 1)
    )  # binomial variance of each side
    point = before - after
    return point, point - 1.96 * se, point + 1.96 * se


def flips(before: Sequence[float], after: Sequence[float]) -> dict[str, int]:
    """Right/wrong items: how many went right -> wrong and wrong -> right (the discordant pairs McNemar counts)."""
    lost = sum(1 for b, a in zip(before, after, strict=True) if b > a)
    gained = sum(1 for b, a in zip(before, after, strict=True) if a > b)
    return {"right_to_wrong": lost, "wrong_to_right": gained}


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks of an ascending sequence."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
