"""Comparing two plans for `python -m planner.diff`: what changed between the base's and the head's plan.

Config keys (resolved spec), plan areas (decision, recipe, layout, memory, estimate, stages, data
statistics), findings added and removed, and the compiled launch scripts, by content (the plan id
and where each side's shipped samples lie are normalised away); the recipe area holds each training
stage's resolved hyperparameters by stage (`train.learning_rate`), and a training stage added or
removed; the risk flags (serving from the plan's typed decision.serving); each goal's one-line
summary; and the GitHub annotations,
located at the head's conf/ file and line that set a finding's key (Locator). The formatters the
summaries share with planner.diff_report (fmt_hours, fmt_gb, ratio, brief, feasible, files_differ)
live here too, so that the reports import from this module and never the other way round, as do
the Options and Source records (planner.diff parses the one and opens the other).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import ConfigError
from schemas.plan import Finding, Plan
from schemas.spec import Spec

FIXED_REPORT = "# report (not part of the diff)\n"
PLAN_AREAS = ("decision", "recipe", "layout", "memory", "estimate", "stages")  # with findings and launch: "the plan"
RECIPE_ONLY = ("method", "method_sources", "layout", "estimate")  # stage keys the recipe area has, not stages
SAMPLES = "<samples>/"  # where a side's shipped samples lie, in its plan's paths
SERVING = {"none": "none", "hot_swap": "hot-swap", "new_deployment": "new deployment"}
# Catalog entries picked as a whole (model, data, inventory, GPU, method): when the entry's name
# changes, the keys under it are folded under that one change.
SWAPS = {"model": "name", "data": "name", "inventory": "name", "inventory.gpu": "name", "method": "kind"}
ID_KEYS = ("name", "urn", "method", "layout")  # how lists of records pair up in a diff
GB = 10**9


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

    def goals(self) -> list[str]:
        if self.plan is not None:
            return [self.plan.spec.goal.name]
        assert self.conf is not None
        return sorted(p.stem for p in (self.conf / "goal").glob("*.yaml"))


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


# --- one side's outcome ---------------------------------------------------------------------------


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


# --- comparing two plans --------------------------------------------------------------------------


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
    if plan.spec.data.path.startswith("builtin:") and plan.data_stats.root:
        roots.add(str(Path(plan.data_stats.root).parent))  # the side's own builtin data
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
        return {"decision": plan["decision"], "recipe": recipe(plan, several), "layout": plan["layout"],
                "memory": memory, "estimate": est, "stages": {"order": [s["name"] for s in plan["stages"]],
                                                              "stages": stages}, "data": data}

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


def recipe_brief(method: dict[str, Any]) -> str:
    """A training stage's method in a few words (a stage added or removed)."""
    words = [str(method.get("kind", "?"))]
    if method.get("finetuning_type"):
        words[0] += f" ({method['finetuning_type']})"
    for key in ("learning_rate", "epochs", "batch_size"):
        if key in method:
            value = method[key]
            words.append(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(words)


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
        lines = difflib.unified_diff(old.get(path, "").splitlines(keepends=True),
                                     new.get(path, "").splitlines(keepends=True),
                                     fromfile=f"base/{path}" if path in old else "/dev/null",
                                     tofile=f"head/{path}" if path in new else "/dev/null")
        out[path] = "".join(ln if ln.endswith("\n") else ln + "\n" for ln in lines)
    return out


def _rendered(plan: Plan, cache: dict) -> dict[str, str]:
    key = ("launch", id(plan))
    if key not in cache:
        cache[key] = (plan, launch_files(plan))  # the plan is held so its id() stays unique
    return cache[key][1]


def _finding_key(f: Finding) -> tuple[str, str, str, str]:
    return (f.severity, f.code, f.path, f.message)


def gpus(plan: Plan) -> int:
    return 0 if plan.layout.source == "none" else plan.layout.gpus


def gpu_hours(plan: Plan) -> float:
    return plan.estimate.gpu_hours or 0.0


def memory_ratio(plan: Plan) -> float | None:
    mem = plan.estimate.memory_per_gpu_bytes
    return mem.total / mem.capacity if mem is not None and mem.capacity else None


def serving(plan: Plan) -> str:
    """hot-swap, new deployment, or none (no training): the plan's decision.serving, as reports show it."""
    return SERVING[plan.decision.serving.kind]


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
    out.annotations = annotations(goal, out.added, out.risks, locate)
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
    out.annotations = annotations(goal, found, out.risks, locate)
    if base is None:
        out.summary = f"{goal}: added: {brief(head)}"
    else:
        assert isinstance(base, Failure)
        out.summary = f"{goal}: base could not be planned ({base.first_line}); head: {brief(head)}"
    return out


def brief(plan: Plan) -> str:
    return (f"method {plan.decision.method}, GPUs {gpus(plan)}, GPU-hours {fmt_hours(gpu_hours(plan))}, "
            f"{feasible(plan)}")


def feasible(plan: Plan) -> str:
    n = len(plan.errors)
    return "feasible" if plan.feasible else f"not feasible ({n} error{'s' if n != 1 else ''})"


def risks(goal: str, base: Plan | None, head: Plan, added: list[Finding], options: Options) -> list[Risk]:
    out = [Risk(goal, "new-error", f"new error {f.code} ({f.path}): {f.message}") for f in added
           if f.severity == "error"]
    if base is not None:
        old, new = gpu_hours(base), gpu_hours(head)
        if new > 0 and old <= 0:
            out.append(Risk(goal, "cost", f"GPU-hours 0 -> {fmt_hours(new)}: training where there was none"))
        elif new > options.risk_cost_ratio * old > 0:
            out.append(Risk(goal, "cost", f"GPU-hours {fmt_hours(old)} -> {fmt_hours(new)} ({ratio(old, new)}), "
                                          f"more than {options.risk_cost_ratio:g}x (risk_cost_ratio)"))
        new_kind, old_kind = head.decision.serving.kind, base.decision.serving.kind
        if new_kind == "new_deployment" and old_kind != "new_deployment":
            was = "a hot-swapped LoRA adapter" if old_kind == "hot_swap" else "no trained model"
            out.append(Risk(goal, "serving", f"needs a new serving deployment (was {was}): all weights change"))
    new_ratio = memory_ratio(head)
    old_ratio = memory_ratio(base) if base is not None else None
    if new_ratio is not None and new_ratio > options.risk_memory_ratio and (old_ratio is None or old_ratio < new_ratio):
        out.append(Risk(goal, "memory", f"memory per GPU at {new_ratio:.0%} of capacity: headroom under "
                                        f"{1 - options.risk_memory_ratio:.0%} (risk_memory_ratio)"))
    return out


def summary_line(d: GoalDiff) -> str:
    if d.status == "unchanged":
        return f"{d.goal}: no change"
    if d.status == "config":
        n = len(d.config)
        return f"{d.goal}: no plan change ({n} configuration key{'s' if n != 1 else ''} changed)" if n \
            else f"{d.goal}: no plan change (data statistics changed)"
    assert isinstance(d.base, Plan) and isinstance(d.head, Plan)
    b, h = d.base, d.head
    parts = []
    if b.decision.method != h.decision.method:
        parts.append(f"method {b.decision.method} -> {h.decision.method}")
    if gpus(b) != gpus(h):
        parts.append(f"GPUs {gpus(b)} -> {gpus(h)}")
    if fmt_hours(gpu_hours(b)) != fmt_hours(gpu_hours(h)):
        parts.append(f"GPU-hours {fmt_hours(gpu_hours(b))} -> {fmt_hours(gpu_hours(h))} "
                     f"({ratio(gpu_hours(b), gpu_hours(h))})")
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
            shown = (f"{first.key} {recipe_value(first.base)} -> {recipe_value(first.head)}" if "." in first.key
                     else f"{first.key} {'added' if first.base is ABSENT else 'removed'}")
            parts.append(shown + (f" (+{len(hyper) - 1} more)" if len(hyper) > 1 else ""))
        if d.launch and not parts:
            parts.append(f"launch scripts ({files_differ(len(d.launch))})")
    named = [f"+{f.severity} {f.code}" for f in d.added if f.severity != "info"] + \
        [f"-{f.severity} {f.code}" for f in d.removed if f.severity != "info"]
    if named and len(named) <= 3:  # errors and warnings by name; infos only counted
        parts += named
    elif d.added or d.removed:
        parts.append(f"findings +{len(d.added)} -{len(d.removed)}")
    return f"{d.goal}: " + (", ".join(parts) or "plan changed")


# --- formatting (planner.diff_report uses these too) ----------------------------------------------


def fmt_hours(value: float | None) -> str:
    if not value:
        return "0"
    if value < 1:
        return f"{value:.2g}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def recipe_value(value: Any) -> str:
    """A hyperparameter as the diff shows it: 0.0001, 5e-06, true, all-linear, (absent)."""
    if value is ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(recipe_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return recipe_brief(value) if "kind" in value else json.dumps(value, separators=(", ", ": "))
    return str(value)


def fmt_gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def ratio(old: float, new: float) -> str:
    if old <= 0:
        return "new" if new > 0 else "same"
    if new <= 0:
        return "none"
    r = new / old
    if r >= 2:
        return f"+{r:.1f}x" if r < 10 else f"+{r:.0f}x"
    if r <= 0.5:
        return f"-{1 / r:.1f}x" if r > 0.1 else f"-{1 / r:.0f}x"
    return f"{(r - 1) * 100:+.0f}%"


def files_differ(n: int) -> str:
    return "1 file differs" if n == 1 else f"{n} files differ"


# --- where a finding's key is set (annotations) ----------------------------------------------------


@dataclass
class Locator:
    """Maps a finding's key path to the file and line of the head's conf/ that sets it (best effort)."""

    goal: str = ""
    conf: Path | None = None  # the head's conf/ folder (None: the head is a plan.json)
    conf_rel: str = "conf"  # that folder relative to the repository root, as annotations name files
    base_conf: Path | None = None  # the base's, to prefer lines the change touched
    spec: Spec | None = None  # the head's spec: which option of each group it picked

    def goal_file(self) -> tuple[str | None, int | None]:
        rel = f"goal/{self.goal}.yaml"
        if self.conf is None or not (self.conf / rel).is_file():
            return None, None
        lines = sorted(self._changed(rel))
        return f"{self.conf_rel}/{rel}", lines[0] if lines else 1

    def __call__(self, key_path: str) -> tuple[str | None, int | None]:
        if self.conf is None or self.spec is None:
            return None, None
        parts = [re.sub(r"\[.*\]$", "", p) for p in key_path.split(".") if p]
        group = parts[0] if parts else ""
        goal_rel = f"goal/{self.goal}.yaml"
        option_rel, rest = self._option_file(parts)
        candidates: list[tuple[str, int]] = []  # best first
        exact = find_key(self._text(goal_rel), parts)
        if exact and exact[1] == len(parts):
            candidates.append((goal_rel, exact[0]))
        if option_rel:
            found = find_key(self._text(option_rel), rest) if rest else None
            if found and found[1] == len(rest):
                candidates.append((option_rel, found[0]))
        for rel in (goal_rel, "config.yaml"):
            line = find_default(self._text(rel), group)
            if line:
                candidates.append((rel, line))
        if option_rel:  # the option's file: where the key sits, else its first changed line
            found = find_key(self._text(option_rel), rest) if rest else None
            changed = sorted(self._changed(option_rel))
            candidates.append((option_rel, found[0] if found else changed[0] if changed else 1))
        if exact:
            candidates.append((goal_rel, exact[0]))
        if not candidates:
            return self.goal_file()
        rel, line = next(((r, n) for r, n in candidates if n in self._changed(r)), candidates[0])
        return f"{self.conf_rel}/{rel}", line

    def _option_file(self, parts: list[str]) -> tuple[str | None, list[str]]:
        spec, conf = self.spec, self.conf
        assert spec is not None and conf is not None
        if not parts:
            return None, []
        group, rest = parts[0], parts[1:]
        if group == "inventory" and rest[:1] == ["gpu"]:
            group, name, rest = "gpu", spec.inventory.gpu.name, rest[1:]
        else:
            name = {"model": spec.model.name, "data": spec.data.name, "inventory": spec.inventory.name,
                    "method": spec.method.kind, "launcher": spec.launcher.kind}.get(group, "")
        if name and (conf / group / f"{name}.yaml").is_file():
            return f"{group}/{name}.yaml", rest
        folder = conf / group
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() and group != "goal" else []:
            found = find_key(path.read_text(encoding="utf-8"), rest)
            if found and found[1] == len(rest):
                return f"{group}/{path.name}", rest
        return None, rest

    def _text(self, rel: str) -> str:
        path = self.conf / rel if self.conf is not None else None
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else ""

    def _changed(self, rel: str) -> set[int]:
        """Line numbers of the head's file that differ from the base's (all, for a new file)."""
        if self.base_conf is None:
            return set()
        old_path = self.base_conf / rel
        new = self._text(rel).splitlines()
        if not old_path.is_file():
            return set(range(1, len(new) + 1))
        old = old_path.read_text(encoding="utf-8").splitlines()
        out: set[int] = set()
        for tag, _, _, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
            if tag in ("replace", "insert"):
                out.update(range(j1 + 1, j2 + 1))
        return out


_KEY_LINE = re.compile(r"^(\s*)(?:-\s+)?([A-Za-z_][\w.\-]*)\s*:(?:\s|$)")


def find_key(text: str, parts: Sequence[str]) -> tuple[int, int] | None:
    """(line, how many leading parts matched) of the deepest YAML key on the path `parts`."""
    stack: list[tuple[int, str]] = []
    best: tuple[int, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _KEY_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match.group(1)) + (2 if line.lstrip().startswith("-") else 0)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        path = [k for _, k in stack]
        depth = len(path) if path == list(parts[:len(path)]) else 0
        if depth and (best is None or depth > best[1]):
            best = (number, depth)
            if depth == len(parts):
                return best
    return best


def find_default(text: str, group: str) -> int | None:
    """The defaults-list line that picks the option of `group` (`- override /model: ...`, `- model: ...`)."""
    if not group:
        return None
    pattern = re.compile(rf"^\s*-\s+(?:override\s+)?/?{re.escape(group)}(?:@[\w.]+)?\s*:")
    return next((n for n, line in enumerate(text.splitlines(), start=1) if pattern.match(line)), None)


def annotations(goal: str, added: list[Finding], found_risks: list[Risk], locate: Locator) -> list[Annotation]:
    level = {"error": "error", "warning": "warning", "info": "notice"}
    out = []
    for f in added:
        file, line = locate(f.path)
        fix = f" Fix: {f.fix}" if f.fix else ""
        out.append(Annotation(level[f.severity], f"plan diff: {goal}: {f.code}", f"{f.message} (key {f.path}).{fix}",
                              file, line))
    file, line = locate.goal_file()
    out += [Annotation("warning", f"plan risk: {goal}: {r.kind}", r.message, file, line)
            for r in found_risks if r.kind != "new-error"]
    return out


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
