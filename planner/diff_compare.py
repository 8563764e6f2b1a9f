"""Comparing two plans for `python -m planner.diff`: what changed between the base's and the head's plan.

Config keys (resolved spec), plan areas (decision, recipe, layout, memory, estimate, stages, data
statistics), findings added and removed, and the compiled launch scripts, by content (the plan id
and where each side's shipped samples lie are normalised away); the recipe area holds each training
stage's resolved hyperparameters by stage (`train.learning_rate`), and a training stage added or
removed; the risk flags (serving from the plan's typed decision.serving); and each goal's one-line
summary. The records it fills are planner.diff_records; where annotations point, planner.diff_locate.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from planner.diff_format import (
    brief,
    feasible,
    files_differ,
    fmt_gb,
    fmt_hours,
    gpu_hours,
    gpus,
    memory_ratio,
    ratio,
    recipe_value,
)
from planner.diff_locate import Locator, annotate
from planner.diff_records import ABSENT, Annotation, Change, Failure, GoalDiff, Options, Risk, Side
from planner.errors import ConfigError
from schemas.plan import Finding, Plan

FIXED_REPORT = "# report (not part of the diff)\n"
PLAN_AREAS = ("decision", "recipe", "layout", "memory", "estimate", "stages")  # with findings and launch: "the plan"
RECIPE_ONLY = ("method", "method_sources", "layout", "estimate")  # stage keys the recipe area has, not stages
SAMPLES = "<samples>/"  # where a side's shipped samples lie, in its plan's paths
# Catalog entries picked as a whole (model, data, inventory, GPU, method): when the entry's name
# changes, the keys under it are folded under that one change.
SWAPS = {"model": "name", "data": "name", "inventory": "name", "inventory.gpu": "name", "method": "kind"}
ID_KEYS = ("name", "urn", "method", "layout")  # how lists of records pair up in a diff


def diff_values(base: Any, head: Any, prefix: str = "") -> list[Change]:
    """Changed leaves as dotted keys. Lists of records pair up by name (or urn, method, layout), else by
    index; a record on one side only is one change, not one per field."""
    if base == head:
        return []
    if isinstance(base, dict) and isinstance(head, dict):
        out: list[Change] = []
        for k in dict.fromkeys([*base, *head]):
            out += diff_values(base.get(k, ABSENT), head.get(k, ABSENT), f"{prefix}.{k}" if prefix else str(k))
        return out
    if _records(base) and _records(head):
        ident = next((k for k in ID_KEYS if _keyed(base, k) and _keyed(head, k)), None)
        old = {r[ident] if ident else str(i): r for i, r in enumerate(base)}
        new = {r[ident] if ident else str(i): r for i, r in enumerate(head)}
        out = []
        for k in dict.fromkeys([*old, *new]):
            out += diff_values(old.get(k, ABSENT), new.get(k, ABSENT), f"{prefix}[{k}]")
        return out
    return [Change(prefix, base, head)]


def _records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _keyed(records: list[dict], key: str) -> bool:
    return all(isinstance(r.get(key), str) for r in records) and len({r[key] for r in records}) == len(records)


def config_changes(base: Plan, head: Plan) -> list[Change]:
    """Changed keys of the resolved spec; keys under a swapped catalog entry fold under its name."""
    found = diff_values(base.spec.model_dump(mode="json"), head.spec.model_dump(mode="json"))
    swapped = sorted((p for p, k in SWAPS.items() if any(c.key == f"{p}.{k}" for c in found)), key=len, reverse=True)
    out = []
    for c in found:
        under = next((p for p in swapped if c.key != f"{p}.{SWAPS[p]}" and c.key.startswith((p + ".", p + "["))), "")
        out.append(Change(c.key, c.base, c.head, under))
    return out


def _dumps(base: Plan, head: Plan) -> tuple[dict, dict]:
    """Both plans as JSON, compared by content: the base's id replaced by the head's, and the folder each
    side's builtin samples resolved in (a revision's extracted conf/samples, this checkout's) by SAMPLES."""
    return _normalised(base, head.id), _normalised(head, head.id)


def _normalised(plan: Plan, plan_id: str) -> dict:
    text = plan.model_dump_json().replace(plan.id, plan_id)
    for root in sorted(_sample_roots(plan), key=len, reverse=True):
        text = text.replace(json.dumps(root + "/")[1:-1], SAMPLES)
    return json.loads(text)


def _sample_roots(plan: Plan) -> set[str]:
    from planner.paths import samples_dir

    roots = {str(samples_dir())}  # builtin replay text and benchmarks
    if plan.spec.data.is_builtin and plan.data_stats.root:
        roots.add(str(Path(plan.data_stats.root).parent))  # the side's own builtin data
    for part in plan.data_stats.mixture:  # a mixture's builtin datasets
        if part.path.startswith("builtin:") and part.stats.root:
            roots.add(str(Path(part.stats.root).parent))
    return roots


def area_changes(base: dict, head: dict) -> dict[str, list[Change]]:
    """The plans' changes by area (both as JSON dumps, ids normalised)."""
    several = max(_training_count(base), _training_count(head)) > 1

    def parts(plan: dict) -> dict[str, Any]:
        est = dict(plan["estimate"])
        memory = est.pop("memory_per_gpu_bytes") or {}
        est["alternatives"] = [f"{a['layout']}: {a['why']}" for a in est["alternatives"]]
        data = {k: v for k, v in plan["data_stats"].items() if k != "root"}
        stages = [{k: v for k, v in s.items() if k not in RECIPE_ONLY} for s in plan["stages"]]
        return {
            "decision": plan["decision"],
            "recipe": recipe(plan, several),
            "layout": plan["layout"],
            "memory": memory,
            "estimate": est,
            "stages": {"order": [s["name"] for s in plan["stages"]], "stages": stages},
            "data": data,
        }

    old, new = parts(base), parts(head)
    return {area: diff_values(old[area], new[area]) for area in old}


def _training_count(plan: dict) -> int:
    return sum(1 for s in plan["stages"] if s.get("method"))


def recipe(plan: dict, several: bool) -> dict[str, dict[str, Any]]:
    """Each training stage's resolved method by stage name (a plan JSON dump). With more than one training
    stage, each stage's own layout, memory per GPU and GPU-hours too (with one, they are the plan's)."""
    out = {}
    for stage in plan["stages"]:
        if not stage.get("method"):
            continue
        values = dict(stage["method"])
        if several:
            est = stage.get("estimate") or {}
            values["layout"] = stage.get("layout")
            values["memory_per_gpu"] = (est.get("memory_per_gpu_bytes") or {}).get("total")
            values["gpu_hours"] = est.get("gpu_hours")
        out[stage["name"]] = values
    return out


def launch_files(plan: Plan) -> dict[str, str]:
    from planner.render import render

    try:
        return {k: v for k, v in render(plan, FIXED_REPORT).items() if k.startswith("launch/")}
    except ConfigError as exc:
        return {"launch/(not compiled)": exc.render() + "\n"}


def launch_diff(base: Plan, head: Plan, cache: dict) -> dict[str, str]:
    old = {k: v.replace(base.id, head.id) for k, v in _rendered(base, cache).items()}
    new = _rendered(head, cache)
    out = {}
    for path in sorted(set(old) | set(new)):
        if old.get(path) == new.get(path):
            continue
        lines = difflib.unified_diff(
            old.get(path, "").splitlines(keepends=True),
            new.get(path, "").splitlines(keepends=True),
            fromfile=f"base/{path}" if path in old else "/dev/null",
            tofile=f"head/{path}" if path in new else "/dev/null",
        )
        out[path] = "".join(ln if ln.endswith("\n") else ln + "\n" for ln in lines)
    return out


def _rendered(plan: Plan, cache: dict) -> dict[str, str]:
    key = ("launch", id(plan))
    if key not in cache:
        cache[key] = (plan, launch_files(plan))  # the plan is held so its id() stays unique
    return cache[key][1]


def _finding_key(f: Finding) -> tuple[str, str, str, str]:
    return (f.severity, f.code, f.path, f.message)


def compare(goal: str, base: Side, head: Side, options: Options, cache: dict, locate: Locator) -> GoalDiff:
    if head is None or base is None or isinstance(base, Failure) or isinstance(head, Failure):
        return _one_sided(goal, base, head, options, locate)
    out = GoalDiff(goal=goal, status="unchanged", base=base, head=head)
    if base is not head:
        out.config = config_changes(base, head)
        old, new = _dumps(base, head)
        out.areas = area_changes(old, new)
        old_f = {_finding_key(f): f for f in json_findings(old)}
        new_f = {_finding_key(f): f for f in head.findings}
        out.added = [f for k, f in new_f.items() if k not in old_f]
        out.removed = [f for k, f in old_f.items() if k not in new_f]
        out.launch = launch_diff(base, head, cache)
    changed = any(out.areas.get(a) for a in PLAN_AREAS) or out.added or out.removed or out.launch
    out.status = "changed" if changed else "config" if out.config or out.areas.get("data") else "unchanged"
    out.risks = risks(goal, base, head, out.added, options)
    out.annotations = annotate(goal, out.added, out.risks, locate)
    out.summary = summary_line(out)
    return out


def json_findings(plan_json: dict) -> list[Finding]:
    return [Finding.model_validate(f) for f in plan_json["findings"]]


def _one_sided(goal: str, base: Side, head: Side, options: Options, locate: Locator) -> GoalDiff:
    if isinstance(head, Failure):
        out = GoalDiff(goal, "error", base, head, summary=f"{goal}: error at head: {head.first_line}")
        out.annotations = [Annotation("error", f"plan diff: {goal}", head.message, *locate.goal_file())]
        return out
    if head is None:
        was = f" (was {brief(base)})" if isinstance(base, Plan) else ""
        return GoalDiff(goal, "removed", base, head, summary=f"{goal}: removed{was}")
    status = "added" if base is None else "changed"
    found = list(head.findings)
    out = GoalDiff(goal, status, base, head, added=found)
    out.risks = risks(goal, None, head, found, options)
    out.annotations = annotate(goal, found, out.risks, locate)
    if base is None:
        out.summary = f"{goal}: added: {brief(head)}"
    else:
        assert isinstance(base, Failure)
        out.summary = f"{goal}: base could not be planned ({base.first_line}); head: {brief(head)}"
    return out


def risks(goal: str, base: Plan | None, head: Plan, added: list[Finding], options: Options) -> list[Risk]:
    out = [
        Risk(goal, "new-error", f"new error {f.code} ({f.path}): {f.message}") for f in added if f.severity == "error"
    ]
    if base is not None:
        old, new = gpu_hours(base), gpu_hours(head)
        if new > 0 and old <= 0:
            out.append(Risk(goal, "cost", f"GPU-hours 0 -> {fmt_hours(new)}: training where there was none"))
        elif new > options.risk_cost_ratio * old > 0:
            out.append(
                Risk(
                    goal,
                    "cost",
                    f"GPU-hours {fmt_hours(old)} -> {fmt_hours(new)} ({ratio(old, new)}), "
                    f"more than {options.risk_cost_ratio:g}x (risk_cost_ratio)",
                )
            )
        new_kind, old_kind = head.decision.serving.kind, base.decision.serving.kind
        if new_kind == "new_deployment" and old_kind != "new_deployment":
            was = "a hot-swapped LoRA adapter" if old_kind == "hot_swap" else "no trained model"
            out.append(Risk(goal, "serving", f"needs a new serving deployment (was {was}): all weights change"))
    new_ratio = memory_ratio(head)
    old_ratio = memory_ratio(base) if base is not None else None
    if new_ratio is not None and new_ratio > options.risk_memory_ratio and (old_ratio is None or old_ratio < new_ratio):
        out.append(
            Risk(
                goal,
                "memory",
                f"memory per GPU at {new_ratio:.0%} of capacity: headroom under "
                f"{1 - options.risk_memory_ratio:.0%} (risk_memory_ratio)",
            )
        )
    return out


def summary_line(d: GoalDiff) -> str:
    if d.status == "unchanged":
        return f"{d.goal}: no change"
    if d.status == "config":
        n = len(d.config)
        return (
            f"{d.goal}: no plan change ({n} configuration key{'s' if n != 1 else ''} changed)"
            if n
            else f"{d.goal}: no plan change (data statistics changed)"
        )
    assert isinstance(d.base, Plan) and isinstance(d.head, Plan)
    b, h = d.base, d.head
    parts = []
    if b.decision.method != h.decision.method:
        parts.append(f"method {b.decision.method} -> {h.decision.method}")
    if gpus(b) != gpus(h):
        parts.append(f"GPUs {gpus(b)} -> {gpus(h)}")
    if fmt_hours(gpu_hours(b)) != fmt_hours(gpu_hours(h)):
        parts.append(
            f"GPU-hours {fmt_hours(gpu_hours(b))} -> {fmt_hours(gpu_hours(h))} ({ratio(gpu_hours(b), gpu_hours(h))})"
        )
    if feasible(b) != feasible(h):
        parts.append(f"{feasible(b)} -> {feasible(h)}")
    if not parts:
        mb, mh = memory_ratio(b), memory_ratio(h)
        mem_b, mem_h = b.estimate.memory_per_gpu_bytes, h.estimate.memory_per_gpu_bytes
        if mem_b and mem_h and mem_b.total != mem_h.total:
            parts.append(f"memory/GPU {fmt_gb(mem_b.total)} -> {fmt_gb(mem_h.total)} ({mb:.0%} -> {mh:.0%})")
        parts += [f"{a} changed" for a in ("decision", "layout") if d.areas.get(a)]
        hyper = d.areas.get("recipe") or []
        if hyper and not parts:
            first = hyper[0]
            shown = (
                f"{first.key} {recipe_value(first.base)} -> {recipe_value(first.head)}"
                if "." in first.key
                else f"{first.key} {'added' if first.base is ABSENT else 'removed'}"
            )
            parts.append(shown + (f" (+{len(hyper) - 1} more)" if len(hyper) > 1 else ""))
        if d.launch and not parts:
            parts.append(f"launch scripts ({files_differ(len(d.launch))})")
    named = [f"+{f.severity} {f.code}" for f in d.added if f.severity != "info"] + [
        f"-{f.severity} {f.code}" for f in d.removed if f.severity != "info"
    ]
    if named and len(named) <= 3:  # errors and warnings by name; infos only counted
        parts += named
    elif d.added or d.removed:
        parts.append(f"findings +{len(d.added)} -{len(d.removed)}")
    return f"{d.goal}: " + (", ".join(parts) or "plan changed")
