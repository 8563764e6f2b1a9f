"""What the planning machine itself has, probed once at the edge (planner.__main__) and given to plan() as an
input, like the data probe: a check may warn from it, nothing it says changes what runs (the compute nodes are
other machines). A plan made in code without a probe knows nothing about the host (every field None)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from schemas.tracking import PACKAGES, SQLITE_PACKAGES

TRACKING_MODULES = tuple(sorted({m for modules in (*PACKAGES.values(), SQLITE_PACKAGES) for m in modules}))


@dataclass(frozen=True)
class Host:
    flash_attn: bool | None = None  # the flash_attn package is importable here; None: not probed
    tracking: frozenset[str] | None = None  # the tracking backends' modules importable here; None: not probed


def probe() -> Host:
    """The host's facts; finding a package's spec imports nothing (well under a millisecond)."""
    return Host(
        flash_attn=importlib.util.find_spec("flash_attn") is not None,
        tracking=frozenset(m for m in TRACKING_MODULES if importlib.util.find_spec(m) is not None),
    )
