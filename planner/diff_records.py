"""The records of `python -m planner.diff`: its options, the two sides, and what a comparison finds.

Options (planner.diff parses them), Source (one side: a conf/ folder or a finished plan), Failure
(a side that could not be planned), and the outcome of comparing a goal: Change, Risk, Annotation,
GoalDiff, and the whole Result with its exit code. Plain data with no logic beyond a few
properties, so that the comparison (planner.diff_compare), the annotations' locator
(planner.diff_locate) and the reports (planner.diff_report) all read the same types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.paths import group_options
from schemas.plan import Finding, Plan


@dataclass(frozen=True)
class Options:
    base: str
    head: str
    repo: Path = Path(".")
    overrides: tuple[str, ...] = ()
    report: str = "text"
    goals: tuple[str, ...] = ()
    fail_on_risk: bool = False
    risk_cost_ratio: float = 2.0
    risk_memory_ratio: float = 0.9


@dataclass
class Source:
    """One side of the diff: a conf/ folder to compose from, or one finished plan."""

    given: str
    kind: str  # git | folder | plan
    label: str
    commit: str | None = None
    conf: Path | None = None  # the conf/ folder to compose (git: extracted into a temporary folder)
    conf_rel: str = "conf"  # conf/ relative to the repository root, for annotations
    key: str = ""  # content key: two sides with the same key compose identically
    plan: Plan | None = None

    def goals(self, extra: Sequence[str] = ()) -> list[str]:
        """The goals planned on this side: its conf/ folder's and those of `extra` folders (hydra.searchpath)."""
        if self.plan is not None:
            return [self.plan.spec.goal.name]
        assert self.conf is not None
        return group_options("goal", [self.conf, *extra])


class _Absent:
    """A key or record on one side of a change only."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Failure:
    """A side that could not be planned: the ConfigError, rendered."""

    message: str

    @property
    def first_line(self) -> str:
        """The error and its first problem, on one line."""
        lines = self.message.splitlines()
        problem = next((ln.strip()[2:] for ln in lines if ln.startswith("  - ")), "")
        return lines[0].removeprefix("error: ") + (f" ({problem})" if problem else "")


Side = Plan | Failure | None  # None: the goal does not exist on that side


@dataclass(frozen=True)
class Change:
    key: str
    base: Any
    head: Any
    under: str = ""  # the swapped catalog entry it is folded under (config only)


@dataclass(frozen=True)
class Risk:
    goal: str
    kind: str  # new-error | cost | serving | memory
    message: str


@dataclass(frozen=True)
class Annotation:
    """A GitHub workflow command (`::warning file=conf/goal/tone.yaml,line=3,title=...::message`)."""

    level: str  # error | warning | notice
    title: str
    message: str
    file: str | None = None
    line: int | None = None

    def render(self) -> str:
        props = [f"file={_escape_prop(self.file)}"] if self.file else []
        if self.file and self.line:
            props.append(f"line={self.line}")
        props.append(f"title={_escape_prop(self.title)}")
        return f"::{self.level} {','.join(props)}::{_escape_data(self.message)}"


@dataclass
class GoalDiff:
    goal: str
    status: str  # unchanged | config | changed | added | removed | error
    base: Side
    head: Side
    summary: str = ""
    config: list[Change] = field(default_factory=list)
    areas: dict[str, list[Change]] = field(default_factory=dict)
    added: list[Finding] = field(default_factory=list)
    removed: list[Finding] = field(default_factory=list)
    launch: dict[str, str] = field(default_factory=dict)
    risks: list[Risk] = field(default_factory=list)
    annotations: list[Annotation] = field(default_factory=list)

    @property
    def plan_changed(self) -> bool:
        return self.status in ("changed", "added", "removed", "error")


@dataclass
class Result:
    options: Options
    base: Source
    head: Source
    goals: list[GoalDiff]

    @property
    def risks(self) -> list[Risk]:
        return [r for g in self.goals for r in g.risks]

    @property
    def exit_code(self) -> int:
        if any(isinstance(g.head, Failure) for g in self.goals):
            return 2
        if self.options.fail_on_risk and self.risks:
            return 3
        return 1 if any(g.plan_changed for g in self.goals) else 0


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
