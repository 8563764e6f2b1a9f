"""`python -m planner.diff --base REV --head REV`: what a config change does to the plan.

Like `terraform plan` for a pull request. Each side is a git revision (its conf/ is read with
`git archive`, the working tree is never touched), a folder (a working tree or a conf/ folder), a
compiled bundle or a plan.json. Every goal is composed, probed and planned on both sides with
this checkout's planner, and the two plans are compared by content: decision, each training
stage's recipe (`train: learning_rate 0.0001 -> 0.001`, a stage added or removed), layout, memory,
GPU-hours and cost, findings, stages and the compiled launch scripts (the plan id, a hash of the
spec, is normalised away). Risk flags: new errors, cost up by more than `risk_cost_ratio`, a new
serving deployment (the plans' decision.serving), memory headroom under 10%.

Exit codes: 0 no plan change, 1 a plan changed, 2 error (bad revision, bad configuration at the
head), 3 a risk flag was raised with fail_on_risk=true. docs/plan-diff.md shows the output.

This module parses the options, opens the two sides (git revision, folder, bundle, plan.json), plans
one goal on one side, runs the whole diff and holds the CLI. planner.diff_records holds the records,
planner.diff_compare compares two plans, planner.diff_locate finds the conf/ line an annotation points at,
planner.diff_format writes values, and planner.diff_report renders the result.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planner.compose import searchpath_folders
from planner.diff_compare import compare
from planner.diff_locate import Locator, find_default, find_key
from planner.diff_records import Failure, Options, Result, Side, Source
from planner.diff_report import RENDERERS, as_annotations, as_json, markdown, text
from planner.errors import ConfigError, did_you_mean
from schemas.plan import Plan

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


# --- options --------------------------------------------------------------------------------------


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
                raise ConfigError(
                    f"unknown report {value!r}.{did_you_mean(value, REPORTS)}",
                    path="report",
                    fix=f"use one of: {', '.join(REPORTS)}",
                )
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
        raise ConfigError(
            f"missing {' and '.join('--' + k for k in missing)}",
            fix="e.g. python -m planner.diff --base HEAD~1 --head HEAD (see --help)",
        )
    return Options(
        base=values["base"],
        head=values["head"],
        repo=Path(values.get("repo", ".")),
        overrides=tuple(overrides),
        report=values.get("report", "text"),
        goals=tuple(dict.fromkeys(goals)),
        fail_on_risk=values.get("fail_on_risk", False),
        risk_cost_ratio=values.get("risk_cost_ratio", 2.0),
        risk_memory_ratio=values.get("risk_memory_ratio", 0.9),
    )


# --- the two sides --------------------------------------------------------------------------------


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
            raise ConfigError(
                f"{given!r} is a folder, but not a bundle (plan.json), a conf/ folder or a folder "
                "holding conf/config.yaml",
                fix="pass a git revision, a bundle, a plan.json or a conf/ folder",
            )
        rel = os.path.relpath(conf.resolve(), repo.resolve())
        return Source(
            given=given,
            kind="folder",
            label=given,
            conf=conf.resolve(),
            conf_rel=Path(rel).as_posix() if not rel.startswith("..") else "conf",
            key="files:" + _files_hash(conf),
        )
    return _git_source(given, repo, dest)


def _plan_source(given: str, path: Path) -> Source:
    from pydantic import ValidationError

    try:
        plan = Plan.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(
            f"{path} is not a plan this planner reads ({exc.error_count()} problems, e.g. {exc.errors()[0]['msg']})",
            fix="recompile the bundle with this planner version, or compare git revisions instead",
        ) from None
    return Source(given=given, kind="plan", label=given, plan=plan, key=f"plan:{plan.id}")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except OSError as exc:
        raise ConfigError(f"cannot run git: {exc}", fix="install git, or pass bundles / plan.json files") from None


def _git_source(given: str, repo: Path, dest: Path) -> Source:
    inside = _git(repo, "rev-parse", "--show-prefix")
    if inside.returncode != 0:
        raise ConfigError(
            f"{given!r} is not a file or folder, and {repo.resolve()} is not in a git repository",
            fix="run from the project's checkout (or pass --repo), or give a bundle / plan.json",
        )
    found = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{given}^{{commit}}")
    if found.returncode != 0 or given.startswith("-"):
        raise ConfigError(
            f"unknown git revision {given!r}",
            fix="use a branch, tag, sha or HEAD~N that exists here "
            "(in CI, fetch the base: actions/checkout with fetch-depth: 0)",
        )
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
    return Source(
        given=given,
        kind="git",
        label=label,
        commit=commit,
        conf=dest / conf_rel,
        conf_rel=conf_rel,
        key="tree:" + tree.stdout.decode().strip(),
    )


def _files_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# --- planning one side ----------------------------------------------------------------------------


def plan_goal(source: Source, goal: str, overrides: Sequence[str], cache: dict) -> Plan | Failure:
    """Compose, probe and plan one goal at one source; identical conf/ trees are planned once."""
    from planner.compose import load
    from planner.core import plan as make_plan
    from planner.probe import probe
    from planner.tokens import token_counter

    key = (source.key, goal, tuple(overrides))
    if key not in cache:
        assert source.conf is not None
        try:
            spec, _ = load([f"+goal={goal}", *overrides], config_dir=str(source.conf))
            stats = probe(
                spec.data,
                Path.cwd(),
                token_counter(spec),
                samples=source.conf / "samples",
                lints=spec.knowledge.lints,
            )
            cache[key] = make_plan(spec, stats)
        except ConfigError as exc:
            cache[key] = Failure(exc.render())
    return cache[key]


# --- the whole diff -------------------------------------------------------------------------------


def pick_goals(base: Source, head: Source, wanted: Sequence[str], overrides: Sequence[str] = ()) -> list[str]:
    if base.plan is not None and head.plan is not None:
        return [head.plan.spec.goal.name]
    one = base.plan or head.plan
    if one is not None and any(g != one.spec.goal.name for g in wanted):
        raise ConfigError(
            f"a plan.json holds one goal ({one.spec.goal.name}); goals= can name only that one",
            path="goals",
            fix="drop goals=, or compare two git revisions for other goals",
        )
    extra = searchpath_folders(overrides) or []
    known = dict.fromkeys(sorted({*base.goals(extra), *head.goals(extra)}))
    if wanted:
        for goal in wanted:
            if goal not in known:
                raise ConfigError(
                    f"unknown goal {goal!r}.{did_you_mean(goal, known)}",
                    path="goals",
                    fix=f"use goals= with some of: {', '.join(known)}",
                )
        return list(wanted)
    if one is not None:  # a plan against a revision: that plan's goal
        return [one.spec.goal.name]
    return list(known)


def side(source: Source, goal: str, options: Options, cache: dict, paired: bool) -> Side:
    if source.plan is not None:
        return source.plan if paired or source.plan.spec.goal.name == goal else None
    if goal not in source.goals(searchpath_folders(options.overrides) or []):
        return None
    return plan_goal(source, goal, options.overrides, cache)


def run(options: Options, workdir: Path) -> Result:
    """Open both sides, plan every goal on each, compare. `workdir` holds the extracted conf/ trees."""
    base = open_source(options.base, options.repo, workdir / "base")
    head = open_source(options.head, options.repo, workdir / "head")
    cache: dict = {}
    paired = base.plan is not None and head.plan is not None
    diffs = []
    for goal in pick_goals(base, head, options.goals, options.overrides):
        old = side(base, goal, options, cache, paired)
        new = side(head, goal, options, cache, paired)
        locate = Locator(
            goal=goal,
            conf=head.conf,
            conf_rel=head.conf_rel,
            base_conf=base.conf,
            spec=new.spec if isinstance(new, Plan) else None,
        )
        diffs.append(compare(goal, old, new, options, cache, locate))
    return Result(options=options, base=base, head=head, goals=diffs)


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


# This module's own names, and those re-exported from planner.diff_records, diff_compare, diff_locate and diff_report.
__all__ = [
    "Failure",
    "Locator",
    "Options",
    "Result",
    "Side",
    "Source",
    "as_annotations",
    "as_json",
    "compare",
    "find_default",
    "find_key",
    "main",
    "markdown",
    "open_source",
    "parse_args",
    "pick_goals",
    "plan_goal",
    "run",
    "side",
    "text",
]


if __name__ == "__main__":
    sys.exit(main())
