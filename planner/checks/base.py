"""What a check is: a pure function of the frozen draft and the planned layout that yields findings, every one
under the code it is registered with. Each module of this package is one group of checks; `planner.checks`
joins the groups into the one registry, in the report's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from planner.draft import Draft
from schemas.plan import Finding, Layout, Severity

Check = Callable[[Draft, Layout], Iterator[Finding]]


class Group:
    """The checks of one module, by code, in the order they are defined (the report's order in the group)."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def __call__(self, code: str) -> Callable[[Check], Check]:
        def register(fn: Check) -> Check:
            if code in self.checks:
                raise ValueError(f"check code {code!r} registered twice")
            self.checks[code] = fn
            return fn

        return register


def finding(severity: Severity, code: str, path: str, message: str, fix: str = "") -> Finding:
    return Finding(severity=severity, code=code, path=path, message=message, fix=fix)
