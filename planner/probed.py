"""What probing one dataset gives (planner.probe, planner.hub_probe) and a mixture weighs (planner.mixture)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from schemas.data import DataStats, Source, SplitStats


@dataclass
class Probed:
    """One dataset's statistics, and the estimated tokens of each training record read (a mixture weighs them)."""

    stats: DataStats
    lengths: list[int] = field(default_factory=list)


def declared_stats(data: Source, source: str, **extra) -> DataStats:
    """The statistics of data.declared: nothing read, the counts as declared."""
    assert data.declared is not None
    d = data.declared
    tokens = d.p95_tokens or 0
    fp = hashlib.sha256(json.dumps(data.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    return DataStats(
        source=source,
        counts="declared",
        training=SplitStats(
            records=d.training,
            tokens_p50=tokens,
            tokens_p95=tokens,
            tokens_max=tokens,
            tokens_total=tokens * d.training,
        ),
        validation=SplitStats(records=d.validation) if d.validation is not None else None,
        fingerprint=fp[:16],
        token_estimate="declared" if d.p95_tokens else "none",
        **extra,
    )
