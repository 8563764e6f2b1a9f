"""`python -m planner +goal=<name> [hydra overrides]`: plan, report, compile, optionally launch.

Exit codes: 0 feasible (warnings allowed), 1 not feasible, 2 invalid configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """\
usage: python -m planner +goal=<name> [group=option ...] [key=value ...]

  groups:   goal model data inventory method launcher layout eval knowledge
  options:  report=text|markdown|json  dry_run=true  out_dir=runs  launch=true  overwrite=true
  examples: python -m planner +goal=tone
            python -m planner +goal=tone model=llama-3.1-70b-instruct inventory=h100-2node method=sft
            python -m planner +goal=tone dry_run=true report=json
  exit:     0 feasible, 1 not feasible, 2 invalid configuration
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args):
        from planner.paths import group_options

        sys.stdout.write(USAGE)
        for group in ("goal", "model", "inventory", "method", "launcher"):
            sys.stdout.write(f"  {group + ':':10}{' '.join(group_options(group))}\n")
        return 0
    from planner.compose import load
    from planner.core import plan as make_plan
    from planner.errors import ConfigError
    from planner.probe import probe
    from planner.report import RENDERERS

    try:
        spec, options = load(args)
        stats = probe(spec.data, Path.cwd(), spec.knowledge.estimator.chars_per_token)
        plan = make_plan(spec, stats)
    except ConfigError as exc:
        sys.stderr.write(exc.render() + "\n")
        return 2
    sys.stdout.write(RENDERERS[options.report](plan))
    sys.stdout.flush()
    code = 0 if plan.feasible else 1
    if options.dry_run:
        return code
    from planner.bundle import launch, remove_results, write_bundle
    from planner.render import render

    try:
        files = render(plan, RENDERERS["markdown"](plan), scripts=plan.feasible)
    except ConfigError as exc:
        sys.stderr.write(exc.render() + "\n")
        return 2
    bundle = write_bundle(files, Path(options.out_dir), plan.name)
    sys.stderr.write(f"bundle: {bundle}\n")
    if options.overwrite:
        removed = remove_results(bundle)
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
        return code
    if not plan.feasible:
        sys.stderr.write("not launching: the plan is not feasible (fix the errors above)\n")
        return 1
    return launch(bundle, plan, stdout_is_data=options.report == "json")


if __name__ == "__main__":
    sys.exit(main())
