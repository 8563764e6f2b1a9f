"""The reports of `python -m planner.diff`: a compared Result as text, markdown, JSON or GitHub annotations.

text is for the terminal, markdown for a pull-request comment (under GitHub's size limit, long
parts folded), json has every changed key whole, annotations are GitHub workflow commands. The
comparison itself is planner.diff_compare; the values are written by planner.diff_format.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

from planner.diff_compare import PLAN_AREAS, SWAPS
from planner.diff_format import (
    brief,
    feasible,
    files_differ,
    fmt_gb,
    fmt_hours,
    fmt_value,
    gpu_hours,
    gpus,
    memory_ratio,
    recipe_change,
    serving,
)
from planner.diff_records import ABSENT, Change, Failure, GoalDiff, Result, Side, Source
from planner.printable import printable
from schemas.plan import Plan

MARKDOWN_LIMIT = 65_000  # GitHub rejects comments over 65,536 characters
MARKER = "<!-- planner-diff -->"  # lets the CI workflow find and update its own comment
TEXT_FOLDED = 8  # keys shown under a swapped catalog entry in the terminal; JSON lists every key


# --- text -----------------------------------------------------------------------------------------


def text(result: Result) -> str:
    out = [
        f"plan diff: {result.base.label} -> {result.head.label}"
        + (f" (overrides: {' '.join(result.options.overrides)})" if result.options.overrides else ""),
        "",
        "summary:",
    ]
    out += [f"  {g.summary}" for g in result.goals]
    if result.risks:
        out += ["", "risks:"] + [f"  ! {r.goal}: {r.message}" for r in result.risks]
    for g in result.goals:
        if g.status == "unchanged":
            continue
        out += ["", f"== {g.goal} ({g.status}) =="]
        out += _text_goal(g)
    return printable("\n".join(out) + "\n")


def _text_change(c: Change, area: str = "", indent: str = "  ") -> list[str]:
    if isinstance(c.base, list) and isinstance(c.head, list) and all(isinstance(v, str) for v in c.base + c.head):
        gone, new_items = [v for v in c.base if v not in c.head], [v for v in c.head if v not in c.base]
        if gone or new_items:  # a list of lines (alternatives, assumptions): what left, what came
            return [f"{indent}{c.key}:"] + [f"{indent}  - {v}" for v in gone] + [f"{indent}  + {v}" for v in new_items]
    old, new = fmt_value(c.base, area, c.key), fmt_value(c.head, area, c.key)
    if len(old) + len(new) > 90:
        return [f"{indent}{c.key}:", f"{indent}  - {old}", f"{indent}  + {new}"]
    return [f"{indent}{c.key}: {old} -> {new}"]


def _text_recipe(c: Change) -> list[str]:
    stage, key, old, new = recipe_change(c)
    if not key:
        return [f"  {stage}: added ({new})" if old == "" else f"  {stage}: removed (was {old})"]
    if len(stage) + len(key) + len(old) + len(new) > 90:
        return [f"  {stage}: {key}:", f"    - {old}", f"    + {new}"]
    return [f"  {stage}: {key} {old} -> {new}"]


def _text_goal(g: GoalDiff) -> list[str]:
    out: list[str] = []
    for side_name, value in (("base", g.base), ("head", g.head)):
        if isinstance(value, Failure):
            out += [f"{side_name}: could not be planned:"] + [f"  {ln}" for ln in value.message.splitlines()]
    if g.status in ("added", "removed"):
        plan = g.head if g.status == "added" else g.base
        if isinstance(plan, Plan):
            out.append(f"{'head' if g.status == 'added' else 'base'}: {brief(plan)}")
    if g.config:
        out.append(f"configuration ({len(g.config)} key{'s' if len(g.config) != 1 else ''}):")
        folded: dict[str, list[Change]] = {}
        for c in g.config:
            if c.under:
                folded.setdefault(c.under, []).append(c)
        for c in g.config:
            if c.under:
                continue
            extra = folded.get(c.key.rsplit(".", 1)[0], []) if c.key.rsplit(".", 1)[0] in SWAPS else []
            if extra:
                out.append(
                    f"  {c.key}: {fmt_value(c.base)} -> {fmt_value(c.head)} "
                    f"(catalog entry swapped: {len(extra)} more key{'s' if len(extra) != 1 else ''} differ)"
                )
                extra = sorted(extra, key=lambda e: "[" in e.key)  # the entry's own keys before its lists
                for e in extra[:TEXT_FOLDED]:
                    out += _text_change(e, indent="    ")
                if len(extra) > TEXT_FOLDED:
                    out.append(f"    ... {len(extra) - TEXT_FOLDED} more (report=json lists every key)")
            else:
                out += _text_change(c)
    for area in (*PLAN_AREAS, "data"):
        found = g.areas.get(area)
        if not found:
            continue
        head_line = area
        if area == "memory" and isinstance(g.base, Plan) and isinstance(g.head, Plan):
            head_line += " per GPU: " + _memory_headline(g.base, g.head)
        out.append(head_line + ":")
        for c in found:
            out += _text_recipe(c) if area == "recipe" else _text_change(c, area)
    if g.added or g.removed:
        out.append(f"findings (+{len(g.added)} -{len(g.removed)}):")
        out += [f"  + {f.severity.upper():7} {f.code} ({f.path}): {f.message}" for f in g.added]
        out += [f"  - {f.severity.upper():7} {f.code} ({f.path}): {f.message}" for f in g.removed]
    if g.launch:
        out.append(f"launch scripts ({files_differ(len(g.launch))}):")
        for diff in g.launch.values():
            out += [f"  {ln}" for ln in diff.rstrip("\n").splitlines()]
    return out


def _memory_headline(base: Plan, head: Plan) -> str:
    def one(plan: Plan) -> str:
        mem = plan.estimate.memory_per_gpu_bytes
        if mem is None:
            return "none"
        return f"{fmt_gb(mem.total)} of {fmt_gb(mem.capacity)} ({mem.total / mem.capacity:.0%})"

    return f"{one(base)} -> {one(head)}"


# --- markdown -------------------------------------------------------------------------------------


def markdown(result: Result, limit: int = MARKDOWN_LIMIT) -> str:
    """GitHub-flavoured: summary and risks first, long parts folded; under `limit` characters."""
    full = _markdown(result, launch=True, details=True)
    if len(full) <= limit:
        return full
    for launch, details in ((False, True), (False, False)):
        notice = (
            f"> [!NOTE]\n> Truncated: the full diff is {len(full):,} characters, over the {limit:,} a comment "
            f"may hold; {'launch-script diffs are' if details else 'the per-goal details are'} left out. "
            "Run the command below (report=text or report=json) for everything."
        )
        shorter = _markdown(result, launch=launch, details=details, notice=notice)
        if len(shorter) <= limit:
            return shorter
    tail = (
        f"\n\n> [!WARNING]\n> Truncated here: the diff is too long for one comment. Run "
        f"`{_command(result)}` for the rest.\n"
    )
    cut = shorter[: limit - len(tail)]
    return cut[: cut.rfind("\n")] + tail


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _code(value: str) -> str:
    return f"`{_cell(value)}`" if "`" not in value else _cell(value)


def _command(result: Result) -> str:
    o = result.options
    words = ["--base", o.base, "--head", o.head, *o.overrides] + ([f"goals={','.join(o.goals)}"] if o.goals else [])
    return "python -m planner.diff " + shlex.join(words)


def _markdown(result: Result, launch: bool, details: bool, notice: str = "") -> str:
    changed = [g for g in result.goals if g.plan_changed]
    n = len(result.goals)
    verdict = (
        f"**{len(changed)} of {n} goal{'s' if n != 1 else ''} {'changes' if len(changed) == 1 else 'change'} the plan**"
        if changed
        else "**No plan change**"
    )
    if result.risks:
        verdict += f" · ⚠️ {len(result.risks)} risk flag{'s' if len(result.risks) != 1 else ''}"
    out = [MARKER, f"## Plan diff: `{result.base.label}` → `{result.head.label}`", "", verdict, ""]
    out += [f"- {_md_summary(g)}" for g in result.goals]
    if notice:
        out += ["", notice]
    if result.risks:
        out += ["", "### ⚠️ Risk flags", ""]
        out += [f"- **{r.goal}** ({r.kind}): {_cell(r.message)}" for r in result.risks]
    for g in result.goals:
        if g.status == "unchanged":
            continue
        out += ["", f"### {g.goal}", ""]
        out += _md_goal(g, launch, details)
    while out and not out[-1]:
        out.pop()
    out += ["", f"<sub>`{_command(result)}` · exit {result.exit_code}</sub>"]
    return printable("\n".join(out) + "\n")


def _md_summary(g: GoalDiff) -> str:
    goal, _, rest = g.summary.partition(": ")
    return f"**{goal}**: {_cell(rest)}"


def _md_goal(g: GoalDiff, launch: bool, details: bool) -> list[str]:
    out: list[str] = []
    for side_name, value in (("base", g.base), ("head", g.head)):
        if isinstance(value, Failure):
            out += [f"**{side_name} could not be planned:**", "", "```text", value.message, "```", ""]
    b = g.base if isinstance(g.base, Plan) else None
    h = g.head if isinstance(g.head, Plan) else None
    if b or h:
        out += ["| | base | head |", "|---|---|---|"]
        for label, fn in _HEADLINE:
            old, new = (fn(b) if b else "-"), (fn(h) if h else "-")
            mark = f"**{label}**" if old != new else label
            out.append(f"| {mark} | {_cell(old)} | {_cell(new)} |")
        out.append("")
    if not details:
        return out
    if g.config:
        folded = sum(1 for c in g.config if c.under)
        out += _fold(
            f"Configuration: {len(g.config)} key{'s' if len(g.config) != 1 else ''} changed"
            + (f" ({folded} under swapped catalog entries)" if folded else ""),
            ["| key | base | head |", "|---|---|---|"]
            + [f"| {_code(c.key)} | {_code(fmt_value(c.base))} | {_code(fmt_value(c.head))} |" for c in g.config],
        )
    areas = [(a, g.areas[a]) for a in (*PLAN_AREAS, "data") if g.areas.get(a)]
    if areas:
        body: list[str] = []
        for area, found in areas:
            title = area.capitalize()
            if area == "memory" and b and h:
                title += f" per GPU: {_memory_headline(b, h)}"
            if area == "recipe":
                body += [f"**{title}** (per training stage)", "", "| stage | key | base | head |", "|---|---|---|---|"]
                for c in found:
                    stage, key, old, new = recipe_change(c)
                    body.append(
                        f"| {_code(stage)} | {_code(key) if key else '(stage)'} | {_cell(old or '(absent)')} | "
                        f"{_cell(new or '(absent)')} |"
                    )
                body.append("")
                continue
            body += [f"**{title}**", "", "| key | base | head |", "|---|---|---|"]
            body += [
                f"| {_code(c.key)} | {_md_value(c.base, area, c.key)} | {_md_value(c.head, area, c.key)} |"
                for c in found
            ]
            body.append("")
        out += _fold("Plan changes: " + ", ".join(a for a, _ in areas), body[:-1])
    if g.added or g.removed:
        rows = ["| | severity | code | key | message |", "|---|---|---|---|---|"]
        rows += [
            f"| {sign} | {f.severity} | `{f.code}` | `{f.path}` | {_cell(f.message)} |"
            for sign, group in (("+", g.added), ("−", g.removed))
            for f in group
        ]
        counts = [f"{len(g.added)} added"] * bool(g.added) + [f"{len(g.removed)} removed"] * bool(g.removed)
        out += _fold(f"Findings: {', '.join(counts)}", rows)
    if g.launch:
        title = f"Launch scripts: {files_differ(len(g.launch))}"
        if launch:
            out += _fold(title, [line for diff in g.launch.values() for line in ("```diff", diff.rstrip("\n"), "```")])
        else:
            out += [f"{title} (left out: too long for a comment)", ""]
    return out


def _md_value(value: Any, area: str, key: str) -> str:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "<br>".join(_cell(v) for v in value)  # one line each (alternatives, assumptions, stage order)
    return _cell(fmt_value(value, area, key))


def _fold(summary: str, body: list[str]) -> list[str]:
    return [f"<details><summary>{summary}</summary>", "", *body, "", "</details>", ""]


def _layout_short(plan: Plan) -> str:
    lay = plan.layout
    if lay.source == "none":
        return "no training"
    nodes = f"{lay.nodes} node{'s' if lay.nodes != 1 else ''}"
    per_node = f"{lay.gpus_per_node} GPU{'s' if lay.gpus_per_node != 1 else ''}"
    return (
        f"{nodes} x {per_node}, TP {lay.tensor_parallel} PP {lay.pipeline_parallel} DP {lay.data_parallel}, "
        f"sharding {lay.sharding}"
    )


def _memory_short(plan: Plan) -> str:
    mem = plan.estimate.memory_per_gpu_bytes
    return "-" if mem is None else f"{fmt_gb(mem.total)} of {fmt_gb(mem.capacity)} ({mem.total / mem.capacity:.0%})"


def _recipe_short(plan: Plan) -> str:
    """Each training stage's learning rate and epochs: `train_sft: sft lr 0.0003, 5 epochs; train: ...`."""
    parts = [
        f"{s.name}: {s.method.kind} lr {s.method.learning_rate:g}, {s.method.epochs} "
        f"epoch{'s' if s.method.epochs != 1 else ''}"
        for s in plan.training_stages
        if s.method is not None
    ]
    return "; ".join(parts) or "-"


_HEADLINE: tuple[tuple[str, Callable[[Plan], str]], ...] = (
    ("method", lambda p: " -> ".join(p.decision.pipeline) or p.decision.method),
    ("recipe", _recipe_short),
    ("model", lambda p: p.spec.model.name),
    ("GPUs", lambda p: str(gpus(p))),
    ("layout", _layout_short),
    ("memory per GPU", _memory_short),
    ("GPU-hours", lambda p: fmt_hours(gpu_hours(p))),
    ("cost", lambda p: "-" if p.estimate.cost_usd is None else f"${p.estimate.cost_usd:,.2f}"),
    ("serving", serving),
    ("feasible", feasible),
)


# --- JSON and annotations -------------------------------------------------------------------------


def as_json(result: Result) -> str:
    def change(c: Change) -> dict[str, Any]:
        out: dict[str, Any] = {"key": c.key}
        if c.base is not ABSENT:
            out["base"] = c.base
        if c.head is not ABSENT:
            out["head"] = c.head
        if c.under:
            out["under"] = c.under
        return out

    def side_json(s: Side) -> dict[str, Any] | None:
        if s is None:
            return None
        if isinstance(s, Failure):
            return {"error": s.message}
        return {
            "id": s.id,
            "method": s.decision.method,
            "gpus": gpus(s),
            "gpu_hours": s.estimate.gpu_hours,
            "cost_usd": s.estimate.cost_usd,
            "memory_ratio": memory_ratio(s),
            "serving": serving(s),
            "feasible": s.feasible,
            "errors": len(s.errors),
        }

    def source(s: Source) -> dict[str, Any]:
        return {"given": s.given, "kind": s.kind, "commit": s.commit}

    doc = {
        "base": source(result.base),
        "head": source(result.head),
        "overrides": list(result.options.overrides),
        "exit_code": result.exit_code,
        "plan_changed": any(g.plan_changed for g in result.goals),
        "risks": [{"goal": r.goal, "kind": r.kind, "message": r.message} for r in result.risks],
        "goals": [
            {
                "goal": g.goal,
                "status": g.status,
                "summary": g.summary,
                "base": side_json(g.base),
                "head": side_json(g.head),
                "config": [change(c) for c in g.config],
                "areas": {a: [change(c) for c in cs] for a, cs in g.areas.items() if cs},
                "findings": {
                    "added": [f.model_dump() for f in g.added],
                    "removed": [f.model_dump() for f in g.removed],
                },
                "launch": g.launch,
                "annotations": [
                    {"level": a.level, "file": a.file, "line": a.line, "title": a.title, "message": a.message}
                    for a in g.annotations
                ],
            }
            for g in result.goals
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def as_annotations(result: Result) -> str:
    return printable("".join(a.render() + "\n" for g in result.goals for a in g.annotations))


RENDERERS: dict[str, Callable[[Result], str]] = {
    "text": text,
    "markdown": markdown,
    "json": as_json,
    "annotations": as_annotations,
}
