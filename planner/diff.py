"""`python -m planner.diff --base REV --head REV`: what a config change does to the plan.

Like `terraform plan` for a pull request. Each side is a git revision (its conf/ is read with
`git archive`, the working tree is never touched), a folder (a working tree or a conf/ folder), a
compiled bundle or a plan.json. Every goal is composed, probed and planned on both sides with
this checkout's planner, and the two plans are compared by content: decision, layout, memory,
GPU-hours and cost, findings, stages and the compiled launch scripts (the plan id, a hash of the
spec, is normalised away). Risk flags: new errors, cost up by more than `risk_cost_ratio`, a new
serving deployment, memory headroom under 10%.

Exit codes: 0 no plan change, 1 a plan changed, 2 error (bad revision, bad configuration at the
head), 3 a risk flag was raised with fail_on_risk=true. docs/plan-diff.md shows the output.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import ConfigError, did_you_mean
from schemas.plan import Finding, Plan
from schemas.spec import Spec

USAGE = """\
usage: python -m planner.diff --base SOURCE --head SOURCE [hydra overrides] [options]

  SOURCE:   a git revision (HEAD~1, main, a sha), a folder holding conf/ (a working tree) or a
            conf/ folder, a compiled bundle folder, or a plan.json
  options:  report=text|markdown|json|annotations   goals=tone,domain_shift (default: all goals)
            fail_on_risk=true   risk_cost_ratio=2   risk_memory_ratio=0.9   --repo DIR (default .)
  overrides apply to both sides, e.g. method=lora inventory=l40s-4
  examples: python -m planner.diff --base HEAD --head .
            python -m planner.diff --base origin/main --head HEAD report=markdown
            python -m planner.diff --base runs/tone-1a2b3c/plan.json --head HEAD goals=tone
  exit:     0 no plan change, 1 a plan changed, 2 error, 3 a risk flag with fail_on_risk=true
"""

REPORTS = ("text", "markdown", "json", "annotations")
MARKDOWN_LIMIT = 65_000  # GitHub rejects comments over 65,536 characters
MARKER = "<!-- planner-diff -->"  # lets the CI workflow find and update its own comment
FIXED_REPORT = "# report (not part of the diff)\n"
PLAN_AREAS = ("decision", "layout", "memory", "estimate", "stages")  # with findings and launch: "the plan"
# Catalog entries picked as a whole (model, data, inventory, GPU, method): when the entry's name
# changes, the keys under it are folded under that one change.
SWAPS = {"model": "name", "data": "name", "inventory": "name", "inventory.gpu": "name", "method": "kind"}
ID_KEYS = ("name", "urn", "method", "layout")  # how lists of records pair up in a diff
GB = 10**9
SHORT = 100  # a record or list shown longer than this is cut (report=json has it whole)
TEXT_FOLDED = 8  # keys shown under a swapped catalog entry in the terminal; JSON lists every key


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


# --- options --------------------------------------------------------------------------------------


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


def parse_args(argv: Sequence[str]) -> Options:
    """--base/--head/--repo, the diff's own key=value options; everything else is a Hydra override."""
    values: dict[str, Any] = {}
    overrides: list[str] = []
    goals: list[str] = []
    items = list(argv)
    while items:
        arg = items.pop(0)
        flag = re.match(r"^--(base|head|repo)(?:=(.*))?$", arg)
        if flag:
            if flag.group(2) is None and not items:
                raise ConfigError(f"--{flag.group(1)} needs a value", fix="see python -m planner.diff --help")
            values[flag.group(1)] = flag.group(2) if flag.group(2) is not None else items.pop(0)
            continue
        if arg.startswith("-"):
            raise ConfigError(f"unknown option {arg!r}", fix="see python -m planner.diff --help")
        key, _, value = arg.partition("=")
        if key in ("goals", "+goal", "goal"):
            goals += [g.strip() for g in value.split(",") if g.strip()]
        elif key == "report":
            if value not in REPORTS:
                raise ConfigError(f"unknown report {value!r}.{did_you_mean(value, REPORTS)}", path="report",
                                  fix=f"use one of: {', '.join(REPORTS)}")
            values["report"] = value
        elif key == "fail_on_risk":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"fail_on_risk must be true or false, got {value!r}", path="fail_on_risk")
            values["fail_on_risk"] = value.lower() in ("true", "1", "yes")
        elif key in ("risk_cost_ratio", "risk_memory_ratio"):
            try:
                number = float(value)
            except ValueError:
                number = -1.0
            if not number > 0:
                raise ConfigError(f"{key} must be a positive number, got {value!r}", path=key)
            values[key] = number
        else:
            overrides.append(arg)
    missing = [k for k in ("base", "head") if not values.get(k)]
    if missing:
        raise ConfigError(f"missing {' and '.join('--' + k for k in missing)}",
                          fix="e.g. python -m planner.diff --base HEAD~1 --head HEAD (see --help)")
    return Options(base=values["base"], head=values["head"], repo=Path(values.get("repo", ".")),
                   overrides=tuple(overrides), report=values.get("report", "text"), goals=tuple(dict.fromkeys(goals)),
                   fail_on_risk=values.get("fail_on_risk", False),
                   risk_cost_ratio=values.get("risk_cost_ratio", 2.0),
                   risk_memory_ratio=values.get("risk_memory_ratio", 0.9))


# --- the two sides --------------------------------------------------------------------------------


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


def open_source(given: str, repo: Path, dest: Path) -> Source:
    """A path when one exists (plan.json, bundle, project or conf/ folder), else a git revision."""
    path = Path(given).expanduser()
    if path.is_file():
        return _plan_source(given, path)
    if path.is_dir():
        if (path / "plan.json").is_file():
            return _plan_source(given, path / "plan.json")
        conf = path if (path / "config.yaml").is_file() else path / "conf"
        if not (conf / "config.yaml").is_file():
            raise ConfigError(f"{given!r} is a folder, but not a bundle (plan.json), a conf/ folder or a folder "
                              "holding conf/config.yaml",
                              fix="pass a git revision, a bundle, a plan.json or a conf/ folder")
        rel = os.path.relpath(conf.resolve(), repo.resolve())
        return Source(given=given, kind="folder", label=given, conf=conf.resolve(),
                      conf_rel=Path(rel).as_posix() if not rel.startswith("..") else "conf",
                      key="files:" + _files_hash(conf))
    return _git_source(given, repo, dest)


def _plan_source(given: str, path: Path) -> Source:
    from pydantic import ValidationError

    try:
        plan = Plan.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{path} is not a plan this planner reads ({exc.error_count()} problems, e.g. "
                          f"{exc.errors()[0]['msg']})", fix="recompile the bundle with this planner version, "
                          "or compare git revisions instead") from None
    return Source(given=given, kind="plan", label=given, plan=plan, key=f"plan:{plan.id}")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except OSError as exc:
        raise ConfigError(f"cannot run git: {exc}", fix="install git, or pass bundles / plan.json files") from None


def _git_source(given: str, repo: Path, dest: Path) -> Source:
    inside = _git(repo, "rev-parse", "--show-prefix")
    if inside.returncode != 0:
        raise ConfigError(f"{given!r} is not a file or folder, and {repo.resolve()} is not in a git repository",
                          fix="run from the project's checkout (or pass --repo), or give a bundle / plan.json")
    found = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{given}^{{commit}}")
    if found.returncode != 0 or given.startswith("-"):
        raise ConfigError(f"unknown git revision {given!r}", fix="use a branch, tag, sha or HEAD~N that exists here "
                          "(in CI, fetch the base: actions/checkout with fetch-depth: 0)")
    commit = found.stdout.decode().strip()
    conf_rel = inside.stdout.decode().strip() + "conf"
    tree = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}:{conf_rel}")
    if tree.returncode != 0:
        raise ConfigError(f"revision {given!r} has no {conf_rel}/ folder", fix="run from the project's root folder")
    archive = _git(repo, "archive", "--format=tar", commit, "--", conf_rel)
    if archive.returncode != 0:
        raise ConfigError(f"git archive {given} failed: {archive.stderr.decode().strip()}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - Python < 3.11.4: git's own archive, no links outside
            tar.extractall(dest)
    label = given[:12] if re.fullmatch(r"[0-9a-f]{40}", given) else given
    return Source(given=given, kind="git", label=label, commit=commit, conf=dest / conf_rel, conf_rel=conf_rel,
                  key="tree:" + tree.stdout.decode().strip())


def _files_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# --- planning one side ----------------------------------------------------------------------------


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


def plan_goal(source: Source, goal: str, overrides: Sequence[str], cache: dict) -> Plan | Failure:
    """Compose, probe and plan one goal at one source; identical conf/ trees are planned once."""
    from planner.compose import load
    from planner.core import plan as make_plan
    from planner.probe import probe

    key = (source.key, goal, tuple(overrides))
    if key not in cache:
        assert source.conf is not None
        try:
            spec, _ = load([f"+goal={goal}", *overrides], config_dir=str(source.conf))
            stats = probe(spec.data, Path.cwd(), spec.knowledge.estimator.chars_per_token,
                          samples=source.conf / "samples")
            cache[key] = make_plan(spec, stats)
        except ConfigError as exc:
            cache[key] = Failure(exc.render())
    return cache[key]


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
    """Both plans as JSON, the base's id replaced by the head's: plans compare by content."""
    return json.loads(base.model_dump_json().replace(base.id, head.id)), json.loads(head.model_dump_json())


def area_changes(base: dict, head: dict) -> dict[str, list[Change]]:
    """The plans' changes by area (both as JSON dumps, ids normalised)."""
    def parts(plan: dict) -> dict[str, Any]:
        est = dict(plan["estimate"])
        memory = est.pop("memory_per_gpu_bytes") or {}
        est["alternatives"] = [f"{a['layout']}: {a['why']}" for a in est["alternatives"]]
        data = {k: v for k, v in plan["data_stats"].items() if k != "root"}
        return {"decision": plan["decision"], "layout": plan["layout"], "memory": memory, "estimate": est,
                "stages": {"order": [s["name"] for s in plan["stages"]], "stages": plan["stages"]}, "data": data}

    old, new = parts(base), parts(head)
    return {area: diff_values(old[area], new[area]) for area in old}


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
    """hot-swap, new deployment, or none (no training), from the consequence-serving finding."""
    found = [f for f in plan.findings if f.code == "consequence-serving"]
    if not found:
        return "none"
    return "hot-swap" if any("no new deployment" in f.message for f in found) else "new deployment"


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
        was = f" (was {_brief(base)})" if isinstance(base, Plan) else ""
        return GoalDiff(goal, "removed", base, head, summary=f"{goal}: removed{was}")
    status = "added" if base is None else "changed"
    found = list(head.findings)
    out = GoalDiff(goal, status, base, head, added=found)
    out.risks = risks(goal, None, head, found, options)
    out.annotations = annotations(goal, found, out.risks, locate)
    if base is None:
        out.summary = f"{goal}: added: {_brief(head)}"
    else:
        assert isinstance(base, Failure)
        out.summary = f"{goal}: base could not be planned ({base.first_line}); head: {_brief(head)}"
    return out


def _brief(plan: Plan) -> str:
    return (f"method {plan.decision.method}, GPUs {gpus(plan)}, GPU-hours {fmt_hours(gpu_hours(plan))}, "
            f"{_feasible(plan)}")


def _feasible(plan: Plan) -> str:
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
        if serving(head) == "new deployment" and serving(base) != "new deployment":
            was = "a hot-swapped LoRA adapter" if serving(base) == "hot-swap" else "no trained model"
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
    if _feasible(b) != _feasible(h):
        parts.append(f"{_feasible(b)} -> {_feasible(h)}")
    if not parts:
        mb, mh = memory_ratio(b), memory_ratio(h)
        mem_b, mem_h = b.estimate.memory_per_gpu_bytes, h.estimate.memory_per_gpu_bytes
        if mem_b and mem_h and mem_b.total != mem_h.total:
            parts.append(f"memory/GPU {fmt_gb(mem_b.total)} -> {fmt_gb(mem_h.total)} ({mb:.0%} -> {mh:.0%})")
        parts += [f"{a} changed" for a in PLAN_AREAS[:2] if d.areas.get(a)]
        if d.launch and not parts:
            parts.append(f"launch scripts ({_files(len(d.launch))})")
    named = [f"+{f.severity} {f.code}" for f in d.added if f.severity != "info"] + \
        [f"-{f.severity} {f.code}" for f in d.removed if f.severity != "info"]
    if named and len(named) <= 3:  # errors and warnings by name; infos only counted
        parts += named
    elif d.added or d.removed:
        parts.append(f"findings +{len(d.added)} -{len(d.removed)}")
    return f"{d.goal}: " + (", ".join(parts) or "plan changed")


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


# --- the whole diff -------------------------------------------------------------------------------


def pick_goals(base: Source, head: Source, wanted: Sequence[str]) -> list[str]:
    if base.plan is not None and head.plan is not None:
        return [head.plan.spec.goal.name]
    one = base.plan or head.plan
    if one is not None and any(g != one.spec.goal.name for g in wanted):
        raise ConfigError(f"a plan.json holds one goal ({one.spec.goal.name}); goals= can name only that one",
                          path="goals", fix="drop goals=, or compare two git revisions for other goals")
    known = dict.fromkeys(sorted({*base.goals(), *head.goals()}))
    if wanted:
        for goal in wanted:
            if goal not in known:
                raise ConfigError(f"unknown goal {goal!r}.{did_you_mean(goal, known)}", path="goals",
                                  fix=f"use goals= with some of: {', '.join(known)}")
        return list(wanted)
    if one is not None:  # a plan against a revision: that plan's goal
        return [one.spec.goal.name]
    return list(known)


def side(source: Source, goal: str, options: Options, cache: dict, paired: bool) -> Side:
    if source.plan is not None:
        return source.plan if paired or source.plan.spec.goal.name == goal else None
    if goal not in source.goals():
        return None
    return plan_goal(source, goal, options.overrides, cache)


def run(options: Options, workdir: Path) -> Result:
    """Open both sides, plan every goal on each, compare. `workdir` holds the extracted conf/ trees."""
    base = open_source(options.base, options.repo, workdir / "base")
    head = open_source(options.head, options.repo, workdir / "head")
    cache: dict = {}
    paired = base.plan is not None and head.plan is not None
    diffs = []
    for goal in pick_goals(base, head, options.goals):
        old = side(base, goal, options, cache, paired)
        new = side(head, goal, options, cache, paired)
        locate = Locator(goal=goal, conf=head.conf, conf_rel=head.conf_rel, base_conf=base.conf,
                         spec=new.spec if isinstance(new, Plan) else None)
        diffs.append(compare(goal, old, new, options, cache, locate))
    return Result(options=options, base=base, head=head, goals=diffs)


# --- formatting values ----------------------------------------------------------------------------


def fmt_hours(value: float | None) -> str:
    if not value:
        return "0"
    if value < 1:
        return f"{value:.2g}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


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


def fmt_value(value: Any, area: str = "", key: str = "") -> str:
    if value is ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if area == "memory" and isinstance(value, int):
        return fmt_gb(value)
    if area == "estimate" and isinstance(value, (int, float)):
        if "hours" in key:
            return fmt_hours(value)
        if key == "cost_usd":
            return f"${value:,.2f}"
        if key == "flops":
            return f"{value:.2e}"
        return f"{value:,}"
    if area == "estimate" and key.endswith("_range") and isinstance(value, list):
        return f"{fmt_hours(value[0])}-{fmt_hours(value[1])}"
    if isinstance(value, str):
        return value if value.strip() and value == value.strip() else json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        shown = json.dumps(value, separators=(", ", ": "))
        return shown if len(shown) <= SHORT or area == "estimate" else shown[:SHORT - 1] + "…"
    return str(value)


# --- text -----------------------------------------------------------------------------------------


def text(result: Result) -> str:
    out = [f"plan diff: {result.base.label} -> {result.head.label}"
           + (f" (overrides: {' '.join(result.options.overrides)})" if result.options.overrides else ""), "",
           "summary:"]
    out += [f"  {g.summary}" for g in result.goals]
    if result.risks:
        out += ["", "risks:"] + [f"  ! {r.goal}: {r.message}" for r in result.risks]
    for g in result.goals:
        if g.status == "unchanged":
            continue
        out += ["", f"== {g.goal} ({g.status}) =="]
        out += _text_goal(g)
    return "\n".join(out) + "\n"


def _text_change(c: Change, area: str = "", indent: str = "  ") -> list[str]:
    if isinstance(c.base, list) and isinstance(c.head, list) and all(isinstance(v, str) for v in c.base + c.head):
        gone, new_items = [v for v in c.base if v not in c.head], [v for v in c.head if v not in c.base]
        if gone or new_items:  # a list of lines (alternatives, assumptions): what left, what came
            return [f"{indent}{c.key}:"] + [f"{indent}  - {v}" for v in gone] + [f"{indent}  + {v}" for v in new_items]
    old, new = fmt_value(c.base, area, c.key), fmt_value(c.head, area, c.key)
    if len(old) + len(new) > 90:
        return [f"{indent}{c.key}:", f"{indent}  - {old}", f"{indent}  + {new}"]
    return [f"{indent}{c.key}: {old} -> {new}"]


def _text_goal(g: GoalDiff) -> list[str]:
    out: list[str] = []
    for side_name, value in (("base", g.base), ("head", g.head)):
        if isinstance(value, Failure):
            out += [f"{side_name}: could not be planned:"] + [f"  {ln}" for ln in value.message.splitlines()]
    if g.status in ("added", "removed"):
        plan = g.head if g.status == "added" else g.base
        if isinstance(plan, Plan):
            out.append(f"{'head' if g.status == 'added' else 'base'}: {_brief(plan)}")
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
                out.append(f"  {c.key}: {fmt_value(c.base)} -> {fmt_value(c.head)} "
                           f"(catalog entry swapped: {len(extra)} more key{'s' if len(extra) != 1 else ''} differ)")
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
            out += _text_change(c, area)
    if g.added or g.removed:
        out.append(f"findings (+{len(g.added)} -{len(g.removed)}):")
        out += [f"  + {f.severity.upper():7} {f.code} ({f.path}): {f.message}" for f in g.added]
        out += [f"  - {f.severity.upper():7} {f.code} ({f.path}): {f.message}" for f in g.removed]
    if g.launch:
        out.append(f"launch scripts ({_files(len(g.launch))}):")
        for path, diff in g.launch.items():
            out += [f"  {ln}" for ln in diff.rstrip("\n").splitlines()]
    return out


def _files(n: int) -> str:
    return "1 file differs" if n == 1 else f"{n} files differ"


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
        notice = (f"> [!NOTE]\n> Truncated: the full diff is {len(full):,} characters, over the {limit:,} a comment "
                  f"may hold; {'launch-script diffs are' if details else 'the per-goal details are'} left out. "
                  "Run the command below (report=text or report=json) for everything.")
        shorter = _markdown(result, launch=launch, details=details, notice=notice)
        if len(shorter) <= limit:
            return shorter
    tail = (f"\n\n> [!WARNING]\n> Truncated here: the diff is too long for one comment. Run "
            f"`{_command(result)}` for the rest.\n")
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
    verdict = (f"**{len(changed)} of {n} goal{'s' if n != 1 else ''} {'changes' if len(changed) == 1 else 'change'} "
               "the plan**" if changed else "**No plan change**")
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
    return "\n".join(out) + "\n"


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
        out += _fold(f"Configuration: {len(g.config)} key{'s' if len(g.config) != 1 else ''} changed"
                     + (f" ({folded} under swapped catalog entries)" if folded else ""),
                     ["| key | base | head |", "|---|---|---|"]
                     + [f"| {_code(c.key)} | {_code(fmt_value(c.base))} | {_code(fmt_value(c.head))} |"
                        for c in g.config])
    areas = [(a, g.areas[a]) for a in (*PLAN_AREAS, "data") if g.areas.get(a)]
    if areas:
        body: list[str] = []
        for area, found in areas:
            title = area.capitalize()
            if area == "memory" and b and h:
                title += f" per GPU: {_memory_headline(b, h)}"
            body += [f"**{title}**", "", "| key | base | head |", "|---|---|---|"]
            body += [f"| {_code(c.key)} | {_md_value(c.base, area, c.key)} | {_md_value(c.head, area, c.key)} |"
                     for c in found]
            body.append("")
        out += _fold("Plan changes: " + ", ".join(a for a, _ in areas), body[:-1])
    if g.added or g.removed:
        rows = ["| | severity | code | key | message |", "|---|---|---|---|---|"]
        rows += [f"| {sign} | {f.severity} | `{f.code}` | `{f.path}` | {_cell(f.message)} |"
                 for sign, group in (("+", g.added), ("−", g.removed)) for f in group]
        counts = [f"{len(g.added)} added"] * bool(g.added) + [f"{len(g.removed)} removed"] * bool(g.removed)
        out += _fold(f"Findings: {', '.join(counts)}", rows)
    if g.launch:
        title = f"Launch scripts: {_files(len(g.launch))}"
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
    return (f"{nodes} x {per_node}, TP {lay.tensor_parallel} PP {lay.pipeline_parallel} DP {lay.data_parallel}, "
            f"sharding {lay.sharding}")


def _memory_short(plan: Plan) -> str:
    mem = plan.estimate.memory_per_gpu_bytes
    return "-" if mem is None else f"{fmt_gb(mem.total)} of {fmt_gb(mem.capacity)} ({mem.total / mem.capacity:.0%})"


_HEADLINE: tuple[tuple[str, Callable[[Plan], str]], ...] = (
    ("method", lambda p: " -> ".join(p.decision.pipeline) or p.decision.method),
    ("model", lambda p: p.spec.model.name),
    ("GPUs", lambda p: str(gpus(p))),
    ("layout", _layout_short),
    ("memory per GPU", _memory_short),
    ("GPU-hours", lambda p: fmt_hours(gpu_hours(p))),
    ("cost", lambda p: "-" if p.estimate.cost_usd is None else f"${p.estimate.cost_usd:,.2f}"),
    ("serving", serving),
    ("feasible", _feasible),
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
        return {"id": s.id, "method": s.decision.method, "gpus": gpus(s), "gpu_hours": s.estimate.gpu_hours,
                "cost_usd": s.estimate.cost_usd, "memory_ratio": memory_ratio(s), "serving": serving(s),
                "feasible": s.feasible, "errors": len(s.errors)}

    def source(s: Source) -> dict[str, Any]:
        return {"given": s.given, "kind": s.kind, "commit": s.commit}

    doc = {
        "base": source(result.base), "head": source(result.head), "overrides": list(result.options.overrides),
        "exit_code": result.exit_code, "plan_changed": any(g.plan_changed for g in result.goals),
        "risks": [{"goal": r.goal, "kind": r.kind, "message": r.message} for r in result.risks],
        "goals": [{
            "goal": g.goal, "status": g.status, "summary": g.summary, "base": side_json(g.base),
            "head": side_json(g.head), "config": [change(c) for c in g.config],
            "areas": {a: [change(c) for c in cs] for a, cs in g.areas.items() if cs},
            "findings": {"added": [f.model_dump() for f in g.added], "removed": [f.model_dump() for f in g.removed]},
            "launch": g.launch,
            "annotations": [{"level": a.level, "file": a.file, "line": a.line, "title": a.title, "message": a.message}
                            for a in g.annotations],
        } for g in result.goals],
    }
    return json.dumps(doc, indent=2) + "\n"


def as_annotations(result: Result) -> str:
    return "".join(a.render() + "\n" for g in result.goals for a in g.annotations)


RENDERERS: dict[str, Callable[[Result], str]] = {
    "text": text, "markdown": markdown, "json": as_json, "annotations": as_annotations,
}


# --- CLI ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args):
        sys.stdout.write(USAGE)
        return 0
    try:
        options = parse_args(args)
        with tempfile.TemporaryDirectory(prefix="planner-diff-") as workdir:
            result = run(options, Path(workdir))
    except ConfigError as exc:
        sys.stderr.write(exc.render() + "\n")
        return 2
    sys.stdout.write(RENDERERS[options.report](result))
    sys.stdout.flush()
    for g in result.goals:
        if isinstance(g.head, Failure):
            sys.stderr.write(f"{g.goal} (head): {g.head.message}\n")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
