"""Feasibility checks: small pure functions of the frozen draft plan, registered under stable codes.

Every check runs on every plan; each yields its findings (severity, code, key path, message, fix).
The config selection, memory and budget are checks too. `CHECKS` is the one registry of finding
producers; its order (group by group, as below) is the order of the report.
"""

from __future__ import annotations

from collections.abc import Iterator

from planner.checks import attention, config, consequences, data, degenerate, hyperparameters, memory, quantization
from planner.checks import layout as layout_checks
from planner.checks import tracking as tracking_checks
from planner.checks.base import Check, Group
from planner.draft import Draft
from schemas.plan import Finding, Layout

GROUPS: tuple[Group, ...] = (
    config.check,
    layout_checks.check,
    quantization.check,
    attention.check,
    data.check,
    hyperparameters.check,
    degenerate.check,
    memory.check,
    tracking_checks.check,
    consequences.check,
)


def _registry(groups: tuple[Group, ...]) -> dict[str, Check]:
    out: dict[str, Check] = {}
    for group in groups:
        for code, fn in group.checks.items():
            if code in out:
                raise ValueError(f"check code {code!r} registered in two groups")
            out[code] = fn
    return out


CHECKS: dict[str, Check] = _registry(GROUPS)


def run_checks(draft: Draft, layout: Layout) -> Iterator[Finding]:
    for code, fn in CHECKS.items():
        for f in fn(draft, layout):
            assert f.code == code, f"check {code} emitted {f.code}"
            yield f


__all__ = ["CHECKS", "Check", "run_checks"]
