"""A mixture of datasets with weights: how many records each part gives the mix, and the statistics of the mix.

Weights are sampling proportions (normalized to sum to 1), as `datasets.interleave_datasets(probabilities=...)`
takes them; `data.stopping_strategy` says how large the mix is, with the same names:

- first_exhausted: the mix stops when the first part runs out, so no record repeats: size = min(pool / share), and
  each part gives round(share x size) of its records, at most all of them (the others are downsampled);
- all_exhausted: the mix goes on until every record of every part is in it: size = max(pool / share), and each part
  gives round(share x size), at least all of its records (the smaller shares repeat records: upsampling).

Unlike a random interleave, the counts are exact and written in the plan (data_stats.mixture[i].drawn); the runtime
draws exactly that many from each part, seeded (runtime.data). A part's pool is its usable training records, less
its hold-out when it has no validation split. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

from planner.probed import Probed
from schemas.data import LONGEST_KEPT, Data, DataStats, PartStats, SplitStats
from schemas.knowledge import Lints

COUNTS_ORDER = ("measured", "sampled", "declared")  # the mix's counts are as good as its least measured part


def draws(pools: Sequence[int], weights: Sequence[float], strategy: str) -> list[int]:
    """Records drawn from each part: shares of the mix's size (see the module docstring); an empty part gives none
    and does not size the mix."""
    live = [(n, w) for n, w in zip(pools, weights, strict=True) if n > 0]
    if not live:
        return [0 for _ in pools]
    total = sum(w for _, w in live)
    ratios = [n / (w / total) for n, w in live]
    size = min(ratios) if strategy == "first_exhausted" else max(ratios)
    out = []
    for n, w in zip(pools, weights, strict=True):
        want = round(w / total * size) if n > 0 else 0
        out.append(min(n, want) if strategy == "first_exhausted" else max(n, want))
    return out


def combine(data: Data, parts: Sequence[Probed], lints: Lints) -> DataStats:
    """The statistics of the mix: every part's own, what each gives, and the mix's training and validation splits
    (what the floors, steps, tokens, time and cost count)."""
    pools, held = [], []
    for p in parts:
        rows = p.stats.training.rows
        h = lints.holdout(rows) if holds_out(p.stats) else 0
        pools.append(rows - h)
        held.append(h)
    weights = [part.weight for part in data.mixture]
    drawn = draws(pools, weights, data.stopping_strategy)
    total_weight = sum(weights)
    mixed = tuple(
        PartStats(
            key=f"data.mixture[{i}]",
            path=part.path,
            format=part.format,
            weight=part.weight,
            share=round(part.weight / total_weight, 6),
            stats=p.stats,
            pool=pools[i],
            held_out=held[i],
            drawn=drawn[i],
        )
        for i, (part, p) in enumerate(zip(data.mixture, parts, strict=True))
    )
    n = sum(drawn)
    # distinct examples: at most a part's unique records (less its hold-out), at most what is drawn from it
    unique = sum(min(d, max(0, p.stats.training.examples - h)) for d, p, h in zip(drawn, parts, held, strict=True))
    training = SplitStats(records=n, usable=n, unique=min(unique, n), **_tokens(parts, drawn))
    validation = _validation(parts, held)
    estimates = {p.stats.token_estimate for p in parts}
    # the weakest count of the parts: unknown, then declared, then estimated from characters, then counted
    token_estimate = next(e for e in ("none", "declared", "chars/4", "tokenizer") if e in estimates)
    digests = {p.stats.tokenizer for p in parts}
    counts = max((p.stats.counts for p in parts), key=COUNTS_ORDER.index)
    blob = json.dumps(
        {"parts": [p.stats.fingerprint for p in parts], "weights": weights, "stopping": data.stopping_strategy},
        sort_keys=True,
    )
    return DataStats(
        source="mixture",
        counts=counts,
        training=training,
        validation=validation,
        fingerprint=hashlib.sha256(blob.encode()).hexdigest()[:16],
        token_estimate=token_estimate,
        tokenizer=digests.pop() if token_estimate == "tokenizer" and len(digests) == 1 else None,
        mixture=mixed,
    )


def holds_out(stats: DataStats) -> bool:
    """A part without a validation split: holdout_fraction of its usable training records validate."""
    if stats.hub is not None:
        return stats.hub.validation_split is None
    return stats.validation is None


def _validation(parts: Sequence[Probed], held: Sequence[int]) -> SplitStats:
    """Every part's validation split and hold-out, concatenated (not weighted: each part is measured at its size)."""
    records = usable = unique = 0
    p50 = p95 = longest = 0
    for p, h in zip(parts, held, strict=True):
        v = p.stats.validation
        if v is not None and not holds_out(p.stats):
            records, usable, unique = records + v.records, usable + v.rows, unique + v.examples
            p50, p95, longest = max(p50, v.tokens_p50), max(p95, v.tokens_p95), max(longest, v.tokens_max)
        else:
            records, usable, unique = records + h, usable + h, unique + h
    return SplitStats(records=records, usable=usable, unique=unique, tokens_p50=p50, tokens_p95=p95, tokens_max=longest)


def _tokens(parts: Sequence[Probed], drawn: Sequence[int]) -> dict:
    """Token statistics of the mix: each part's records weighted by how often the mix draws them (drawn / records
    read), declared parts as drawn records of their declared p95."""
    weighted: list[tuple[int, float]] = []
    longest: list[int] = []
    for p, d in zip(parts, drawn, strict=True):
        if d == 0:
            continue
        lengths = sorted(p.lengths) or [p.stats.training.tokens_p95]
        w = d / len(lengths)
        weighted += [(t, w) for t in lengths]
        acc, kept = 0.0, 0  # the longest records as many times as the mix draws them (fractions carried over)
        for t in reversed(lengths):
            acc += w
            k = math.floor(acc + 1e-9) - kept
            longest += [t] * k
            kept += k
            if kept >= LONGEST_KEPT:
                break
    if not weighted:
        return {}
    weighted.sort()
    total_weight = sum(w for _, w in weighted)

    def pct(q: float) -> int:
        acc = 0.0
        for t, w in weighted:
            acc += w
            if acc >= q * total_weight - 1e-9:
                return t
        return weighted[-1][0]

    return {
        "tokens_p50": pct(0.5),
        "tokens_p95": pct(0.95),
        "tokens_max": weighted[-1][0],
        "tokens_total": round(sum(t * w for t, w in weighted)),
        "tokens_longest": tuple(sorted(longest, reverse=True)[:LONGEST_KEPT]),
    }
