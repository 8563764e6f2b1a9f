"""`python -m planner +goal=<name> [hydra overrides]`: plan, report, compile, optionally launch.

A @hydra.main app, so Hydra's flags work: --help, --hydra-help, --cfg job|hydra|all, --resolve, --info,
-cd/-cp/-cn, hydra.searchpath=[file://...], shell completion, and -m sweeps (which end with one comparison
table over the runs, or one JSON array with report=json). conf/config.yaml keeps Hydra from writing to the
working folder.

Exit codes: 0 feasible (warnings allowed), 1 not feasible, 2 invalid configuration; a sweep exits with the worst.
With launch=true: the run script's exit code (a stage's), or 75 when the bundle is running already (launch=true and
overwrite=true refuse: planner.bundle.running).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from planner.paths import conf_dir

# What the jobs of one main() call left: exit code, summary row, sweep folder; and whether a job is running.
_RUNS: list[dict[str, Any]] = []
_IN_JOB: list[bool] = [False]


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    _IN_JOB[0] = True
    roots = [s.path for s in hc.runtime.config_sources if s.schema == "file"]
    # The overrides as typed: iterating the ListConfig would resolve a `${oc.env:...}` in them (planner.secrets).
    task = [str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False)]  # type: ignore[union-attr]
    code, row = _job(cfg, task, dict(hc.runtime.choices), roots, quiet=multirun)
    _IN_JOB[0] = False
    sweep_dir = str(hc.sweep.dir) if multirun else ""
    _RUNS.append(
        {"code": code, "row": row, "sweep_dir": sweep_dir, "report": str(cfg.get("report", "text")), "task": task}
    )


def _job(
    cfg: DictConfig, overrides: list[str], choices: dict[str, Any], roots: list[str], quiet: bool
) -> tuple[int, dict[str, Any]]:
    """One run: validate, plan, report (unless quiet: a sweep reports once, at the end), bundle, launch."""
    from planner.compose import _hydra_error, validate
    from planner.core import plan as make_plan
    from planner.errors import ConfigError
    from planner.host import probe as probe_host
    from planner.printable import printable
    from planner.probe import probe
    from planner.report import RENDERERS
    from planner.secrets import resolved
    from planner.tokens import token_counter

    row: dict[str, Any] = {k: choices.get(k) for k in ("goal", "model", "inventory", "method")}
    try:
        try:
            raw = resolved(cfg)  # OmegaConf.to_container(resolve=True), credentials kept out (planner.secrets)
        except ConfigError:
            raise
        except Exception as exc:  # OmegaConf raises many types; all are the user's config
            raise _hydra_error(exc, overrides, str(conf_dir())) from None
        spec, options = validate(raw, overrides, roots)
        stats = probe(spec.data, Path.cwd(), token_counter(spec), lints=spec.knowledge.lints)
        plan = make_plan(spec, stats, probe_host())
    except ConfigError as exc:
        sys.stderr.write(exc.render() + "\n")
        return 2, {**row, "feasible": False, "error": exc.summary()}
    row = _summary(plan, options.goal)
    code = 0 if plan.feasible else 1
    if not options.dry_run:  # written before the report is printed: a bundle that cannot be written is only an error
        from planner.bundle import BUSY, busy_message, launch, remove_results, running, write_bundle
        from planner.render import render

        if options.launch or options.overwrite:  # a live run of this bundle: touch nothing of it
            target = Path(options.out_dir) / plan.name
            live = running(target)
            if live is not None:
                action = "overwrite=true" if options.overwrite else "a second launch"
                sys.stderr.write(printable(busy_message(target, *live, action)))
                return BUSY, {**row, "error": f"running (pid {live[0]})"}
        try:
            files = render(plan, RENDERERS["markdown"](plan), scripts=plan.feasible)
            bundle = write_bundle(files, Path(options.out_dir), plan.name)
            removed = remove_results(bundle) if options.overwrite else []
        except ConfigError as exc:
            sys.stderr.write(exc.render() + "\n")
            return 2, {**row, "error": exc.summary()}
    if not quiet:
        sys.stdout.write(RENDERERS[options.report](plan))
        sys.stdout.flush()
    if options.dry_run:
        return code, row
    sys.stderr.write(printable(f"bundle: {bundle}\n"))
    row["bundle"] = str(bundle)
    if options.overwrite:
        if removed:
            sys.stderr.write(
                f"overwrite=true: removed {' and '.join(removed)} of {bundle} (status, checkpoints, "
                "weights, gate, publish, logs): the run starts over\n"
            )
    elif kept := [f"{name}/" for name in ("run", "logs") if (bundle / name).exists()]:
        sys.stderr.write(
            f"kept {' and '.join(kept)}: launch=true skips the completed stages and resumes the "
            "others (overwrite=true starts over)\n"
        )
    if not plan.feasible:
        sys.stderr.write("not feasible: plan.json and report.md written for review; no launch scripts\n")
    if not options.launch:
        return code, row
    if not plan.feasible:
        sys.stderr.write("not launching: the plan is not feasible (fix the errors above)\n")
        return 1, row
    return launch(bundle, plan, stdout_is_data=options.report == "json"), row


def _summary(plan: Any, goal: str) -> dict[str, Any]:
    """One row of a sweep's comparison table."""
    est, layout = plan.estimate, plan.layout
    memory = est.memory_per_gpu_bytes
    error = next((f.message for f in plan.findings if f.severity == "error"), "")
    return {
        "goal": goal or plan.spec.goal.name,
        "model": plan.spec.model.name,
        "inventory": plan.spec.inventory.name,
        "method": plan.decision.method,
        "feasible": plan.feasible,
        "gpus": layout.nodes * layout.gpus_per_node,
        "memory_per_gpu_gb": round(memory.total / 1e9, 1) if memory is not None else None,
        "gpu_hours": est.gpu_hours,
        "cost_usd": est.cost_usd,
        "error": error,
        "plan_id": plan.id,
    }


_COLUMNS = (
    ("goal", "goal"),
    ("model", "model"),
    ("inventory", "inventory"),
    ("method", "method"),
    ("feasible", "feasible"),
    ("gpus", "GPUs"),
    ("memory_per_gpu_gb", "mem/GPU GB"),
    ("gpu_hours", "GPU-hours"),
    ("cost_usd", "cost $"),
    ("error", "first error"),
)


def _with_swept_keys(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, each with `swept`: the values of the swept keys that are not columns of their own
    (`method.learning_rate=1e-4,5e-5` -> {"method.learning_rate": "1e-4"})."""
    sets = [dict(o.lstrip("+~").split("=", 1) for o in run["task"] if "=" in o) for run in runs]
    columns = {key for key, _ in _COLUMNS}
    keys = [k for k in dict.fromkeys(k for s in sets for k in s) if k not in columns]
    swept = [k for k in keys if len({s.get(k) for s in sets}) > 1]
    return [{**run["row"], "swept": {k: s.get(k) for k in swept}} for run, s in zip(runs, sets, strict=True)]


def _table(rows: list[dict[str, Any]], fmt: str) -> str:
    """The sweep's comparison: a JSON array, a markdown table, or aligned text."""
    import json

    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"

    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "NO"
        if key == "cost_usd" and isinstance(value, float):
            return f"{value:.2f}"
        if key == "gpu_hours" and isinstance(value, float):
            return f"{value:.3g}"
        text = str(value)
        return text if len(text) <= 70 else text[:67] + "..."

    swept = list(rows[0].get("swept", {})) if rows else []
    cols = [*_COLUMNS[:4], *((f"swept:{k}", k) for k in swept), *_COLUMNS[4:]]
    rows = [{**r, **{f"swept:{k}": v for k, v in r.get("swept", {}).items()}} for r in rows]
    cells = [[cell(r, k) for k, _ in cols] for r in rows]
    heads = [title for _, title in cols]
    if fmt == "markdown":
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return f"sweep: {len(rows)} runs\n" + "\n".join(lines) + "\n"


def _prepare(args: list[str]) -> tuple[list[str], list[str]]:
    """Hydra's own parser splits flags from overrides; a documented key gets `++` (compose.schema_key) and a
    group option is checked against the shipped conf/ and the user's folders (did-you-mean for a typo)."""
    import re

    from hydra._internal.utils import get_args_parser

    from planner.compose import check_overrides, schema_key, search_roots, searchpath_folders
    from planner.config_guard import check_folders

    parsed, _ = get_args_parser().parse_known_intermixed_args(args)
    overrides = list(parsed.overrides or [])
    # Every folder Hydra may read a config file from, before it reads one: size and alias limits.
    check_folders([str(conf_dir()), parsed.config_dir, *(searchpath_folders(overrides) or [])])
    if parsed.config_path is None and parsed.config_name is None:
        roots = search_roots(overrides, str(conf_dir()), parsed.config_dir)
        if roots is not None:
            check_overrides(overrides, roots)
    rewritten = {o: schema_key(o) for o in overrides if not re.match(r"^[+~]*hydra[./]", o)}
    return [*_flags(args), *(rewritten.get(o, o) for o in overrides)], [rewritten.get(o, o) for o in overrides]


_VALUED = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir"}
_INFO = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def _flags(args: list[str]) -> list[str]:
    """The flags of argv with their values, so that they go before the overrides (argparse wants them there)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            out.append(arg)
            takes = arg in _VALUED or (arg in ("-i", "--info") and i + 1 < len(args) and args[i + 1] in _INFO)
            if takes and i + 1 < len(args):
                out.append(args[i + 1])
                i += 1
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the Hydra app on argv (default sys.argv[1:]) and return the exit code (tests and `ladder` call this)."""
    from planner.errors import ConfigError

    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["help"], ["-help"]):
        args = ["--help"]
    try:
        args, overrides = _prepare(args)
    except ConfigError as exc:
        sys.stderr.write(exc.render() + "\n")
        return 2
    _RUNS.clear()
    _completion_line()
    # --hydra-help and --info set up logging handlers on the root logger (bound to the stderr of the moment): a
    # caller that runs main() more than once (tests, a sweep driver) gets its logging back as it was.
    root_logger = logging.getLogger()
    saved_logging = (root_logger.handlers[:], root_logger.level)
    saved_argv, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [saved_argv[0] if saved_argv and saved_argv[0] else "planner", *args]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing: compose errors become ConfigErrors
    try:
        with _mode_from_flags(args, overrides):
            _app()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            return exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:
        if _IN_JOB[0]:
            raise
        from planner.compose import _hydra_error

        error = exc if isinstance(exc, ConfigError) else _hydra_error(exc, overrides, str(conf_dir()))
        sys.stderr.write(error.render() + "\n")
        return 2
    finally:
        _IN_JOB[0] = False
        root_logger.handlers[:], _ = saved_logging
        root_logger.setLevel(saved_logging[1])
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
    return _finish()


def _completion_line() -> None:
    """Hydra's completion query strips `python script.py` or `app` from COMP_LINE; `python -m planner` is neither,
    so it becomes `planner` here (COMP_POINT moved with it). `ladder -sc install=bash` installs the completion."""
    import re

    line = os.environ.get("COMP_LINE")
    if not line:
        return
    short = re.sub(r"^\s*\S*python[\d.]*\s+-m\s+planner(?=\s|$)", "planner", line)
    if short != line:
        os.environ["COMP_LINE"] = short
        point = os.environ.get("COMP_POINT", "")
        if point.isdigit():
            os.environ["COMP_POINT"] = str(max(0, int(point) - (len(line) - len(short))))


@contextlib.contextmanager
def _mode_from_flags(args: list[str], overrides: list[str]) -> Iterator[None]:
    """Before running, Hydra composes the whole tree once more only to read `hydra.mode` (Hydra.get_mode), which
    costs a third of a dry run. The shipped config.yaml sets no mode, so with the shipped primary config and no
    `hydra.` override the mode is the flags' (-m or not) and that compose is skipped. A primary config of the
    user's (-cd/-cp/-cn) or any hydra override keeps Hydra's own lookup."""
    own_primary = any(a in ("-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name") for a in args)
    if own_primary or any(o.lstrip("+~").startswith("hydra") for o in overrides):
        yield
        return
    from hydra._internal.hydra import Hydra

    real = Hydra.get_mode
    Hydra.get_mode = lambda self, config_name, overrides: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Hydra.get_mode = real  # type: ignore[method-assign]


def _finish() -> int:
    """No job ran (--help, --cfg, --info, completion): 0. One run: its code. A sweep: print the comparison once,
    remove the sweep's temporary folder, and exit with the worst code."""
    if not _RUNS:
        return 0
    sweep_dir = _RUNS[0]["sweep_dir"]
    if not sweep_dir:
        return int(_RUNS[0]["code"])
    fmt = _RUNS[0]["report"] if _RUNS[0]["report"] in ("text", "markdown", "json") else "text"
    from planner.printable import printable

    sys.stdout.write(printable(_table(_with_swept_keys(_RUNS), fmt)))
    sys.stdout.flush()
    folder = Path(sweep_dir)
    if folder.parent.name == "planner-multirun" and folder.parent.parent == Path(os.environ.get("TMPDIR", "/tmp")):
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()
    return max(int(r["code"]) for r in _RUNS)


if __name__ == "__main__":
    sys.exit(main())
