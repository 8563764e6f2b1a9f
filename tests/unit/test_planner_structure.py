"""The planner's shape: no import cycle, one registry of finding producers over a frozen draft, registries
keyed like the schema's Literals, and the config selection reported through that registry."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import typing
from pathlib import Path

import pytest

from planner import ladder
from planner.checks import CHECKS, GROUPS
from planner.core import select_config
from planner.draft import Draft, Selection, TrainStage
from schemas.knowledge import RungCheck
from tests.unit.helpers import make_plan

ROOT = Path(__file__).resolve().parents[2]
PLANNER = ROOT / "planner"


def _graph() -> dict[str, set[str]]:
    """planner module -> the planner modules it imports, counting every import (inside functions too)."""
    mods = {
        p: ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for p in PLANNER.rglob("*.py")
    }
    names = set(mods.values())
    graph: dict[str, set[str]] = {m: set() for m in names}
    for path, mod in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in names else node.module for a in node.names
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[mod].update(t for t in targets if t in names and t not in (mod, "planner"))
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    seen: set[str] = set()
    stack: list[str] = []

    def visit(m: str) -> list[str]:
        if m in stack:
            return [*stack[stack.index(m) :], m]
        if m in seen:
            return []
        seen.add(m)
        stack.append(m)
        for n in sorted(graph[m]):
            if found := visit(n):
                return found
        stack.pop()
        return []

    for m in sorted(graph):
        if found := visit(m):
            return found
    return []


def test_no_import_cycle_in_the_planner():
    graph = _graph()
    assert len(graph) >= 20, "the glob found too few planner modules"
    assert _cycle(graph) == [], " -> ".join(_cycle(graph))


def test_checks_read_the_draft_and_never_import_the_core():
    graph = _graph()
    for mod in sorted(m for m in graph if m == "planner.checks" or m.startswith("planner.checks.")):
        assert "planner.core" not in graph[mod], mod
        assert "planner.stages" not in graph[mod], f"{mod}: checks read the laid-out draft, they do not lay out"
    assert "planner.core" not in graph["planner.draft"]


def test_one_registry_of_finding_producers_in_the_groups_order():
    codes = [code for group in GROUPS for code in group.checks]
    assert list(CHECKS) == codes
    assert len(set(codes)) == len(codes)
    assert len(CHECKS) >= 40
    assert codes[:4] == ["config-urn-invalid", "config-urn-version", "config-urn-unknown", "config-none-for-gpu"]
    assert not hasattr(ladder, "CHECKS"), "the ladder's registry is of rung conditions, named apart"


def test_every_group_module_is_joined():
    modules = sorted(p.stem for p in (PLANNER / "checks").glob("*.py") if p.stem not in ("__init__", "base"))
    assert len(modules) >= 5
    groups = [importlib.import_module(f"planner.checks.{name}").check for name in modules]
    assert sorted(map(id, groups)) == sorted(map(id, GROUPS))


def test_ladder_conditions_match_the_schema():
    assert set(ladder.CONDITIONS) == set(typing.get_args(RungCheck))


def test_draft_is_frozen():
    for cls in (Draft, TrainStage, Selection):
        assert vars(cls)["__dataclass_params__"].frozen, cls
    stage = TrainStage(name="train", kind="lora", recipe=None, seq=8)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage.seq = 16  # type: ignore[misc]


@pytest.mark.parametrize(
    "urn, problem, source",
    [
        (None, None, "matched"),
        ("meta/llama-3.1-8b-instruct@v1.0.0+A100", None, "explicit"),
        ("not a urn", "config-urn-invalid", "matched"),
        ("meta/llama-3.1-8b-instruct", "config-urn-version", "matched"),
        ("meta/llama-3.1-8b-instruct@v9.9.9+A100", "config-urn-unknown", "matched"),
    ],
)
def test_config_selection_records_why_a_urn_is_refused(urn, problem, source):
    overrides = ["+goal=tone", "inventory=dgx-h100", "model=llama-3.1-8b-instruct"]
    p = make_plan(*overrides, f"model.config={urn if urn is not None else 'null'}")
    selection = select_config(p.spec)
    assert (selection.problem, selection.source) == (problem, source)
    assert selection.config is not None
    urn_findings = [f.code for f in p.findings if f.code.startswith("config-urn")]
    assert urn_findings == ([problem] if problem else [])
    if problem:
        assert not p.feasible


def test_no_config_for_the_gpu_class_is_an_info_finding():
    p = make_plan("+goal=tone", "model=gemma-2-2b-it", "inventory=l40s-4", "method=lora")
    assert select_config(p.spec).source == "foreign"
    assert [f.severity for f in p.findings if f.code == "config-none-for-gpu"] == ["info"]


@pytest.mark.parametrize("goal", sorted(p.stem for p in (ROOT / "conf" / "goal").glob("*.yaml")))
def test_every_finding_comes_from_a_registered_check(goal):
    p = make_plan(f"+goal={goal}")
    assert p.findings, goal
    assert {f.code for f in p.findings} <= set(CHECKS)
    order = list(CHECKS)
    positions = [order.index(f.code) for f in p.findings]
    assert positions == sorted(positions), "findings come in the registry's order"
