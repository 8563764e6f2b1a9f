"""`python -m planner.cancel <bundle>`: stop a launched bundle's chain.

Slurm: `scancel` every job in launch/jobs.json that may still run (pending, running, requeued, ...), the later
stages first. scancel sends SIGTERM: a training stage saves a checkpoint and ends `cancelled`, not requeued (the
time-limit warning is SIGUSR1, templates/slurm/stage.sbatch.j2). Local and torchrun: SIGTERM to the recorded run
script, which passes it to the running stage and starts no later one. A bundle never launched, or whose jobs all
ended, has nothing to cancel (exit 0). Exit 2 for a path that is not a bundle, 1 when scancel or kill fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from planner.status import JOBS, LIVE, Bundle, NotABundle, load, run_alive, slurm_states


def cancel_slurm(bundle: Bundle) -> int:
    recorded = bundle.jobs.get("jobs")
    jobs = (
        {s: str(v["job_id"]) for s, v in recorded.items() if isinstance(v, dict) and v.get("job_id")}
        if (isinstance(recorded, dict))
        else {}
    )
    if not jobs:
        print(f"nothing to cancel: {bundle.path} has no submitted jobs ({JOBS})")
        return 0
    states = slurm_states(sorted(set(jobs.values()), key=int))
    live = [(stage, job) for stage, job in jobs.items() if states.get(job, ("", ""))[0] in LIVE]
    if not live:
        ended = ", ".join(f"{stage} {states.get(job, ('?',))[0]}" for stage, job in jobs.items())
        print(f"nothing to cancel: every job of {bundle.path.name} has ended ({ended})")
        return 0
    live.reverse()  # the later stages first: none starts while an earlier one is being cancelled
    try:
        result = subprocess.run(
            ["scancel", *(job for _, job in live)], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        sys.stderr.write(f"error: scancel failed: {exc}\n")
        return 1
    if result.returncode != 0:
        sys.stderr.write(f"error: scancel exited {result.returncode}: {result.stderr.strip()}\n")
        return 1
    for stage, job in reversed(live):
        print(f"cancelled {stage}: job {job} (was {states[job][0]})")
    print("a running training stage saves a checkpoint first; python -m planner.status shows when it has stopped")
    return 0


def cancel_local(bundle: Bundle) -> int:
    jobs = bundle.jobs
    if not jobs:
        print(f"nothing to cancel: {bundle.path} was never launched (no {JOBS})")
        return 0
    alive = run_alive(bundle)
    pid = jobs.get("pid")
    if alive is None:
        sys.stderr.write(f"error: the run (pid {pid}) is on {jobs.get('host')}: run this there\n")
        return 1
    if not alive or not isinstance(pid, int):
        print(f"nothing to cancel: the run started {jobs.get('started_at', '?')} (pid {pid}) has ended")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        sys.stderr.write(f"error: could not signal pid {pid}: {exc}\n")
        return 1
    print(
        f"sent SIGTERM to {jobs.get('launcher')} run pid {pid}: the running stage saves a checkpoint and stops; "
        "no later stage starts"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m planner.cancel", description="Cancel a launched bundle.")
    parser.add_argument("bundle", help="the bundle folder (runs/<goal>-<plan id>) or its plan.json")
    args = parser.parse_args(argv)
    try:
        bundle = load(args.bundle)
    except NotABundle as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if bundle.plan.decision.launcher == "slurm":
        return cancel_slurm(bundle)
    return cancel_local(bundle)


if __name__ == "__main__":
    sys.exit(main())
