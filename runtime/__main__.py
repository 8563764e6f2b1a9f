"""`python -m runtime <plan.json> --stage <name>`: run one stage of a compiled plan.

The plan is the contract: this reads plan.json and nothing else (no Hydra config, no guessing
from the environment). Each stage writes run/<stage>/status.json through its lifecycle:
created -> running -> completed | failed | cancelled. A stage that already completed for this plan
(runtime.context.already_completed) is skipped with exit 0, so relaunching a bundle resumes it.
Exit codes: 0 completed (or skipped), 1 failed, 2 bad invocation, 75 the stage is running already in another
process (run/<stage>/.lock: the message names its pid and how to stop it), 143 cancelled (SIGTERM).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Stage name -> "module:function"; imported lazily so validate_data needs no torch.
STAGES: dict[str, str] = {
    "validate_data": "runtime.validate:run",
    "baseline_eval": "runtime.evaluate.stage:baseline",
    "train_sft": "runtime.train:run",
    "train": "runtime.train:run",
    "eval": "runtime.evaluate.stage:tuned",
    "gate": "runtime.gate.stage:run",
    "publish": "runtime.publish:run",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime", description="Run one stage of a compiled plan.")
    parser.add_argument("plan", type=Path, help="the bundle's plan.json")
    parser.add_argument("--stage", required=True, choices=sorted(STAGES))
    args = parser.parse_args(argv)

    from runtime.context import (
        BUSY,
        Busy,
        RunContext,
        StageFailed,
        already_completed,
        hold_stage_lock,
        release_stage_lock,
        run_stage,
    )

    try:
        ctx = RunContext.load(args.plan, args.stage)
    except StageFailed as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if already_completed(ctx):
        return 0
    try:
        hold_stage_lock(ctx)  # before the first write to status.json: a refused start changes nothing
    except Busy as exc:
        sys.stderr.write(f"error: {exc}\n")
        return BUSY
    module, _, func = STAGES[args.stage].partition(":")

    def body() -> object:
        from runtime.tracking import stage_run

        with stage_run(ctx):  # plan.tracking: the stage's run in the tracking backend, open while it runs
            return getattr(importlib.import_module(module), func)(ctx)

    try:
        return run_stage(ctx, body)
    finally:
        release_stage_lock(ctx)


if __name__ == "__main__":
    sys.exit(main())
