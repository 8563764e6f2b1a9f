"""Checks of experiment tracking (spec.tracking): whether its backend can log from this installation."""

from __future__ import annotations

from collections.abc import Iterator

from planner.checks.base import Group, finding
from planner.draft import Draft
from planner.tracking import packages
from schemas.plan import Finding, Layout
from schemas.tracking import INSTALL

check = Group()


@check("tracking-package")
def _package(d: Draft, layout: Layout) -> Iterator[Finding]:
    """A backend whose packages are not importable where the planner runs: the stages will fail at their start
    unless the machines they run on have them (a warning: those are often other machines)."""
    t = d.spec.tracking
    importable = d.host.tracking
    if t.backend == "none" or importable is None:
        return
    missing = sorted({dist for module, dist in packages(t).items() if module not in importable})
    if missing:
        yield finding(
            "warning",
            "tracking-package",
            "tracking",
            f"tracking={t.backend} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            "installed here: every stage refuses to start without it where it runs",
            f"{INSTALL} where the stages run (or tracking=none)",
        )
