"""`python -m planner.status <bundle>`: where a launched bundle stands, stage by stage.

For each stage of the plan: the scheduler's view (Slurm: the job id from launch/jobs.json and its state from
sacct, else squeue, else `scontrol show job`, since the local cluster keeps no accounting; local and torchrun:
whether the recorded run script still runs) beside the runtime's own run/<stage>/status.json (state,
steps, last losses, peak memory, error). A bundle never launched lists its stages as not started. Exit 0 for
a bundle, 2 for a path that is not one. Reads plan.json through schemas.Plan; never writes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.plan import Plan

JOBS = "launch/jobs.json"  # planner.bundle.JOBS: written by the launch scripts
# Slurm states in which a job may still run (planner.cancel cancels these).
LIVE = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "CONFIGURING",
    "COMPLETING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
}
GONE = "GONE"  # Slurm no longer knows the job (finished longer ago than MinJobAge, without accounting)
TIMEOUT = 30


class NotABundle(Exception):
    """The path is not a compiled bundle (no readable plan.json)."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    plan: Plan
    jobs: dict[str, Any]  # launch/jobs.json; {} if never launched


@dataclass(frozen=True)
class StageView:
    stage: str
    job_id: str | None
    scheduler: str  # a Slurm state, "running"/"exited" for a local run, "not submitted", "not started"
    reason: str
    state: str  # run/<stage>/status.json's state, or "not started"
    steps: str
    train_loss: float | None
    val_loss: float | None
    peak_memory_bytes: int | None
    error: str | None


def load(path: str | Path) -> Bundle:
    """The bundle at `path` (its folder, or its plan.json); NotABundle with what to do otherwise."""
    given = Path(path)
    folder = given.parent if given.name == "plan.json" else given
    plan_file = folder / "plan.json"
    if not folder.is_dir():
        raise NotABundle(f"{given} is not a folder: pass a bundle folder (runs/<goal>-<plan id>)")
    if not plan_file.is_file():
        raise NotABundle(f"{folder} is not a bundle (no plan.json): pass a bundle folder (runs/<goal>-<plan id>)")
    try:
        plan = Plan.model_validate_json(plan_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        detail = f"{exc.error_count()} problems" if isinstance(exc, ValidationError) else str(exc)
        raise NotABundle(f"{plan_file} is not a readable plan ({detail}): re-plan the bundle") from None
    return Bundle(path=folder, plan=plan, jobs=read_json(folder / JOBS))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file as a dict; {} when it is missing, torn or not an object (a status file mid-write)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run(*args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def slurm_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Job id -> (state, reason). sacct when accounting is on; else squeue (jobs Slurm still lists, with their
    reason), then `scontrol show job` for the rest; GONE for a job none of them knows."""
    states: dict[str, tuple[str, str]] = {}
    if not job_ids:
        return states
    ids = ",".join(job_ids)
    sacct = _run("sacct", "-n", "-P", "-X", "-j", ids, "-o", "JobIDRaw,State,Reason")
    if sacct is not None and sacct.returncode == 0:
        for line in sacct.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 2 and parts[0] in job_ids:
                states[parts[0]] = (parts[1].split()[0], parts[2] if len(parts) > 2 else "")
    missing = [j for j in job_ids if j not in states]
    if missing:
        squeue = _run("squeue", "-h", "-t", "all", "-j", ",".join(missing), "-o", "%i|%T|%r")
        if squeue is not None and squeue.returncode == 0:
            for line in squeue.stdout.splitlines():
                parts = line.strip().split("|")
                if len(parts) == 3 and parts[0] in missing:
                    states[parts[0]] = (parts[1], parts[2])
    for job in (j for j in job_ids if j not in states):
        shown = _run("scontrol", "show", "job", "-o", job)
        if shown is None:
            states[job] = ("UNKNOWN", "scontrol did not answer")
            continue
        fields = dict(part.split("=", 1) for part in shown.stdout.split() if "=" in part)
        if shown.returncode == 0 and "JobState" in fields:
            states[job] = (fields["JobState"], fields.get("Reason", ""))
        elif "Invalid job id" in shown.stdout + shown.stderr:
            states[job] = (GONE, "Slurm no longer lists it")
        else:
            states[job] = ("UNKNOWN", (shown.stderr or shown.stdout).strip()[:120])
    return states


def run_alive(bundle: Bundle) -> bool | None:
    """Whether the local / torchrun run script in launch/jobs.json still runs: None when it ran on another host
    (this machine cannot tell). The pid must be a bash running the bundle's script in the bundle folder."""
    jobs = bundle.jobs
    pid = jobs.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if jobs.get("host") not in (None, socket.gethostname()):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    script = f"run_{jobs.get('launcher')}.sh".encode()
    return any(arg.endswith(script) for arg in cmdline) and cwd.resolve() == bundle.path.resolve()


def views(bundle: Bundle) -> list[StageView]:
    plan, jobs = bundle.plan, bundle.jobs
    slurm = plan.decision.launcher == "slurm"
    raw = jobs.get("jobs")
    recorded: dict[str, Any] = raw if isinstance(raw, dict) else {}
    ids = {s: str(v.get("job_id")) for s, v in recorded.items() if isinstance(v, dict) and v.get("job_id")}
    states = slurm_states(sorted(set(ids.values()), key=int)) if slurm and ids else {}
    alive = run_alive(bundle) if not slurm and jobs else False
    out = []
    for stage in plan.stages:
        status = read_json(bundle.path / "run" / stage.name / "status.json")
        if status.get("plan_id") not in (None, plan.id):
            status = {}  # left by another plan: not this run's
        job = ids.get(stage.name)
        if slurm:
            scheduler, reason = states.get(job, ("not submitted", "")) if job else ("not submitted", "")
        elif not jobs:
            scheduler, reason = "not started", ""
        else:
            scheduler = {True: "running", False: "exited", None: "elsewhere"}[alive]
            reason = f"pid {jobs.get('pid')} on {jobs.get('host')}"
        total, done = status.get("total_steps"), status.get("steps_completed")
        steps = f"{done}/{total}" if total else "-"
        if total and isinstance(done, int):
            steps += f" ({100 * done // total}%)"
        out.append(
            StageView(
                stage=stage.name,
                job_id=job,
                scheduler=scheduler,
                reason=reason,
                state=str(status.get("state", "not started")),
                steps=steps,
                train_loss=status.get("train_loss"),
                val_loss=status.get("val_loss"),
                peak_memory_bytes=status.get("peak_memory_bytes"),
                error=status.get("error"),
            )
        )
    return out


def _loss(value: float | None) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _bytes(value: int | None) -> str:
    return f"{value / 1e9:.2f} GB" if isinstance(value, (int, float)) and value else "-"


def render(bundle: Bundle, rows: list[StageView]) -> str:
    plan, jobs = bundle.plan, bundle.jobs
    launcher = plan.decision.launcher
    lines = [f"bundle {bundle.path} (plan {plan.id}, launcher {launcher})"]
    if not jobs:
        lines.append("never launched: no launch/jobs.json (run the bundle's launch script to start it)")
    elif launcher == "slurm":
        lines.append(f"submitted {jobs.get('submitted_at', '?')}; jobs in {JOBS}")
    else:
        lines.append(f"started {jobs.get('started_at', '?')} as pid {jobs.get('pid')} on {jobs.get('host')}")
    head = (
        "stage",
        "job" if launcher == "slurm" else "run",
        "scheduler",
        "status",
        "steps",
        "train loss",
        "val loss",
        "peak memory",
    )
    table = [head]
    for r in rows:
        scheduler = r.scheduler + (f" ({r.reason})" if r.reason and r.reason not in ("None", "(null)") else "")
        table.append(
            (
                r.stage,
                r.job_id or "-",
                scheduler,
                r.state,
                r.steps,
                _loss(r.train_loss),
                _loss(r.val_loss),
                _bytes(r.peak_memory_bytes),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines += [f"{r.stage}: {r.error}" for r in rows if r.error]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m planner.status", description="Where a bundle's stages stand: scheduler and runtime."
    )
    parser.add_argument("bundle", help="the bundle folder (runs/<goal>-<plan id>) or its plan.json")
    parser.add_argument("--json", action="store_true", help="one JSON object per stage, as a list")
    args = parser.parse_args(argv)
    try:
        bundle = load(args.bundle)
    except NotABundle as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    rows = views(bundle)
    if args.json:
        sys.stdout.write(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    else:
        sys.stdout.write(render(bundle, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
