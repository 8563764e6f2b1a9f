"""The ladder: walk the rungs cheapest first, evaluate each rung's checks (rules in conf/), choose.

The rules are data (`knowledge.ladder`); this module is the small engine and a closed registry of
the conditions a rule may name (`CONDITIONS`, keyed by `schemas.knowledge.RungCheck`). A condition
decides a rung's verdict; it is not a finding producer (those are `planner.checks.CHECKS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from planner.methods import METHODS
from schemas.data import DataStats
from schemas.goal import Goal
from schemas.knowledge import Knowledge, RungRule
from schemas.plan import Rung
from schemas.records import FORMATS

LABELS = {"prompting": "prompting", "rag": "RAG", **{kind: m.label for kind, m in METHODS.items()}}


@dataclass(frozen=True)
class Assessment:
    """What the layout search says about training one rung on the inventory."""

    fits: bool
    gpus: int
    gpu_hours: float | None
    detail: str = ""


@dataclass
class Inputs:
    goal: Goal
    data_format: str
    stats: DataStats
    knowledge: Knowledge
    assess: Callable[[str], Assessment]
    inventory_name: str


Outcome = tuple[str, str] | None  # (verdict, reason) when the condition fails
Condition = Callable[[RungRule, Inputs], Outcome]
CONDITIONS: dict[str, Condition] = {}


def _condition(name: str) -> Callable[[Condition], Condition]:
    def register(fn: Condition) -> Condition:
        CONDITIONS[name] = fn
        return fn

    return register


@_condition("gap")
def _gap(rule: RungRule, x: Inputs) -> Outcome:
    if x.goal.gap in rule.gaps:
        return None
    return "not_applicable", f"the gap is {x.goal.gap}; {LABELS[rule.method]} is for {rule.best_when}"


@_condition("baseline")
def _baseline(rule: RungRule, x: Inputs) -> Outcome:
    g = x.goal
    if g.baseline_score is not None and g.target_score is not None and g.baseline_score < g.target_score:
        return "rejected", f"measured {g.baseline_score:.2f} with the best prompt < target {g.target_score:.2f}"
    return None


@_condition("format")
def _format(rule: RungRule, x: Inputs) -> Outcome:
    if not rule.formats or x.data_format in rule.formats:
        return None
    wanted = " or ".join(sorted({FORMATS[f].words for f in rule.formats}))
    return "rejected", f"no {wanted} (the data holds {FORMATS[x.data_format].words})"


@_condition("soft_floor")
def _soft_floor(rule: RungRule, x: Inputs) -> Outcome:
    floor = x.knowledge.floors[rule.method]
    n = x.stats.examples
    if n >= floor.soft:
        return None
    return "rejected", f"{n:,} {floor.unit} < {floor.soft:,} minimum"


@_condition("hot_swap")
def _hot_swap(rule: RungRule, x: Inputs) -> Outcome:
    if rule.redeploy and x.goal.serving.hot_swap:
        server = x.goal.serving.server or "the running server"
        return "rejected", f"needs a new serving deployment; the goal must hot-swap into {server}"
    return None


@_condition("fits")
def _fits(rule: RungRule, x: Inputs) -> Outcome:
    a = x.assess(rule.method)
    if a.fits:
        return None
    return "rejected", f"does not fit on {x.inventory_name}{': ' + a.detail if a.detail else ''}"


@_condition("budget")
def _budget(rule: RungRule, x: Inputs) -> Outcome:
    budget = x.goal.gpu_hour_budget
    a = x.assess(rule.method)
    if budget is None or a.gpu_hours is None or a.gpu_hours <= budget:
        return None
    return "rejected", f"{a.gpu_hours:.1f} GPU-hours > budget {budget:g}"


@dataclass(frozen=True)
class LadderResult:
    choice: str
    rungs: tuple[Rung, ...]
    next_step: str


def _chosen_reason(rule: RungRule, x: Inputs) -> str:
    parts = [f"{x.goal.gap} gap ({rule.best_when})"]
    if rule.formats:
        floor = x.knowledge.floors[rule.method]
        parts.append(f"{x.stats.examples:,} {floor.unit}")
    if "fits" in rule.checks:
        a = x.assess(rule.method)
        parts.append(f"{a.gpus} GPU{'s' if a.gpus != 1 else ''}")
        if a.gpu_hours is not None:
            parts.append(f"~{a.gpu_hours:.1f} GPU-hours")
    if not rule.formats:
        parts.append("no training")
    parts.append(
        "needs a new serving deployment"
        if rule.redeploy
        else "no new deployment (hot-swaps into serving)"
        if rule.formats
        else "no new deployment"
    )
    return ", ".join(parts)


def climb(x: Inputs) -> LadderResult:
    """Evaluate every rung; choose the first that passes all its checks."""
    evaluated: list[tuple[RungRule, Outcome, str]] = []
    for rule in x.knowledge.ladder:
        outcome: Outcome = None
        failed = ""
        for name in rule.checks:
            outcome = CONDITIONS[name](rule, x)
            if outcome is not None:
                failed = name
                break
        evaluated.append((rule, outcome, failed))
    chosen = next((r for r, o, _ in evaluated if o is None), None)
    fallback = False
    if chosen is None:  # nothing passes: the closest applicable rung, so the checks report why
        fallback = True
        chosen = next((r for r, o, f in evaluated if o and f in ("soft_floor", "fits", "budget")), None) or next(
            (r for r, o, _ in evaluated if o and o[0] != "not_applicable"), x.knowledge.ladder[0]
        )
    rungs: list[Rung] = []
    passed_chosen = False
    for rule, outcome, _ in evaluated:
        label = LABELS[rule.method]
        if rule is chosen:
            reason = (
                _chosen_reason(rule, x)
                if not fallback
                else (f"no rung passes every check; the closest: {outcome[1] if outcome else ''}")
            )
            rungs.append(Rung(method=rule.method, verdict="chosen", reason=f"{label}: {reason}"))
            passed_chosen = True
        elif outcome is None:
            why = f"costlier than {LABELS[chosen.method]}, which suffices" if passed_chosen else "passes"
            rungs.append(Rung(method=rule.method, verdict="rejected", reason=f"{label}: {why}"))
        else:
            rungs.append(Rung(method=rule.method, verdict=outcome[0], reason=f"{label}: {outcome[1]}"))
    return LadderResult(choice=chosen.method, rungs=tuple(rungs), next_step=chosen.next_step)


def order(knowledge: Knowledge) -> list[str]:
    return [r.method for r in knowledge.ladder]
