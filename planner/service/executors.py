"""Executors: how a job's compiled bundle runs outside the server, and how the server finds it again.

An executor starts the bundle's own run script (what `python -m planner ... launch=true` runs), returns a handle
(JSON, kept in the store), says whether a handle's run is still alive and how it ended, and cancels it. The server
never trains in its own process, and a run outlives the server: a restarted server polls the same handles
(reconciliation). EXECUTORS maps a plan's launcher to its executor; a new one is a class with these methods and one
line there.

The local executor runs `bash launch/run_local.sh` (or run_torchrun.sh) in a session of its own (a new process
group: a signal to the server or its terminal does not reach it) under a small wrapper that records its pid and,
when the script ends, its exit code, in the job folder (jobs/<id>/pid, exit_code; output in run.log).

The Slurm executor runs `bash launch/submit.sh` (one sbatch job per stage, afterok in DAG order) and keeps the job
ids; Slurm's states (sacct, else squeue, else scontrol) and the stages' status files say how the run stands.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from planner.bundle import JOBS as JOBS_FILE
from planner.bundle import RUN_SCRIPT
from schemas.inventory import Inventory
from schemas.plan import Plan

# The wrapper: $1 the job folder, $2 the run script. Files are written whole (temporary name, then mv).
_WRAPPER = r"""
printf '%d\n' "$$" >"$1/pid.new" && mv -f "$1/pid.new" "$1/pid"
bash "$2"
rc=$?
printf '%d\n' "$rc" >"$1/exit_code.new" && mv -f "$1/exit_code.new" "$1/exit_code"
exit "$rc"
"""
# Never handed to a run: the server's own credentials.
_PRIVATE_ENV = ("LADDER_API_TOKEN", "LADDER_API_TOKENS", "DATABASE_URL")


@dataclass(frozen=True)
class RunState:
    """What an executor knows of a run: alive (perhaps still waiting in a queue), or ended (with its exit code when
    it was recorded)."""

    alive: bool
    exit_code: int | None = None
    detail: str = ""
    queued: bool = False  # alive, but nothing of it has started: every job waits in the scheduler's queue


class Executor(Protocol):
    kind: str
    queues: bool  # a started run may wait in a scheduler's queue first (the job is pending until it runs)

    def capacity(self, inventory: Inventory) -> int:
        """GPUs (a CPU inventory: its one slot) jobs may hold at once."""
        ...

    def start(self, job_id: str, bundle: Path, plan: Plan, folder: Path) -> dict[str, Any]:
        """Start the bundle; the handle to find the run again."""
        ...

    def adopt(self, folder: Path) -> dict[str, Any] | None:
        """The handle of a run started for this job folder that the store did not record (a server that died
        between starting it and saving the handle); None when there is none."""
        ...

    def poll(self, handle: dict[str, Any], bundle: Path, folder: Path) -> RunState: ...

    def cancel(self, handle: dict[str, Any], bundle: Path) -> str:
        """Ask the run to stop (its training stage saves a checkpoint first); what was done, in words."""
        ...


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None when it is gone or a
    zombie. With the pid it identifies a process: a pid reused later has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class LocalExecutor:
    """Runs bundles as processes on this machine (launchers local and torchrun)."""

    kind = "local"
    queues = False

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # started by this server: reaped by poll()
        self._lock = threading.Lock()

    def capacity(self, inventory: Inventory) -> int:
        return max(1, inventory.gpus_per_node)  # one machine: one node's GPUs (a CPU inventory: one slot)

    def start(self, job_id: str, bundle: Path, plan: Plan, folder: Path) -> dict[str, Any]:
        script = bundle / RUN_SCRIPT[plan.decision.launcher]
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("pid", "exit_code"):
            (folder / name).unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # this venv's python
        env["PYTHONUNBUFFERED"] = "1"
        with open(folder / "run.log", "ab") as log:
            proc = subprocess.Popen(
                ["bash", "-c", _WRAPPER, f"ladder-job-{job_id}", str(folder), str(script)],
                cwd=bundle,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        with self._lock:
            self._children[proc.pid] = proc
        return {"pid": proc.pid, "start_time": _start_time(proc.pid), "host": socket.gethostname()}

    def adopt(self, folder: Path) -> dict[str, Any] | None:
        try:
            pid = int((folder / "pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return {"pid": pid, "start_time": _start_time(pid), "host": socket.gethostname()}

    def poll(self, handle: dict[str, Any], bundle: Path, folder: Path) -> RunState:
        pid = int(handle.get("pid") or 0)
        with self._lock:
            child = self._children.get(pid)
            if child is not None and child.poll() is not None:  # reap our own child (no zombie)
                del self._children[pid]
        if handle.get("host") not in (None, socket.gethostname()):
            return RunState(alive=True, detail=f"pid {pid} runs on {handle.get('host')}: this server cannot see it")
        started = _start_time(pid) if pid > 0 else None
        if started is not None and started == handle.get("start_time"):
            return RunState(alive=True)
        try:
            code: int | None = int((folder / "exit_code").read_text().strip())
        except (OSError, ValueError):
            code = None
        return RunState(alive=False, exit_code=code)

    def cancel(self, handle: dict[str, Any], bundle: Path) -> str:
        """planner.cancel's way: SIGTERM to the run script in launch/jobs.json, which passes it to the running
        stage. Before the script has recorded itself, the wrapper's process group gets the SIGTERM."""
        from planner.cancel import cancel_local
        from planner.status import load

        if (bundle / "launch" / "jobs.json").is_file():
            out = io.StringIO()
            with _STDOUT, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                cancel_local(load(bundle))
            return out.getvalue().strip()
        pid = int(handle.get("pid") or 0)
        if pid > 0 and _start_time(pid) == handle.get("start_time"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            return f"sent SIGTERM to process group {pid} (the run had not started its first stage)"
        return "nothing to cancel: the run has ended"


# Slurm job states after which a job will not run again.
_SLURM_OK = "COMPLETED"


class SlurmExecutor:
    """Runs bundles compiled for the slurm launcher: `bash launch/submit.sh` queues one sbatch job per stage, in DAG
    order (afterok; a failed stage cancels the ones after it), and records them in launch/jobs.json. The handle is
    those job ids. A run lives while any of its jobs may still run (planner.status.slurm_states: sacct, else
    squeue, else `scontrol show job`); it ended well (exit code 0) when every job completed. A job Slurm no longer
    knows (purged after MinJobAge on a cluster without accounting) counts by its stage's status.json. The run
    outlives the server: a restarted server polls the same job ids."""

    kind = "slurm"
    queues = True
    SUBMIT = "launch/submit.sh"
    SUBMIT_TIMEOUT = 300

    def capacity(self, inventory: Inventory) -> int:
        return max(1, inventory.nodes * inventory.gpus_per_node)  # Slurm queues the rest itself

    def start(self, job_id: str, bundle: Path, plan: Plan, folder: Path) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}  # sbatch passes its environment on
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # this venv's python
        env["PYTHONUNBUFFERED"] = "1"
        try:
            with open(folder / "run.log", "ab") as log:
                done = subprocess.run(
                    ["bash", str(bundle / self.SUBMIT)],
                    cwd=bundle,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=env,
                    timeout=self.SUBMIT_TIMEOUT,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            raise OSError(f"{self.SUBMIT} did not finish within {self.SUBMIT_TIMEOUT} s (is slurmctld up?)") from None
        out = done.stdout.decode(errors="replace")
        with open(folder / "run.log", "a", encoding="utf-8") as log:
            log.write(out)
        if done.returncode != 0:
            tail = (folder / "run.log").read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise OSError(f"{self.SUBMIT} exited with {done.returncode}: {tail[0]}")
        jobs = dict(line.split(" ", 1) for line in out.splitlines() if line.count(" ") == 1)
        return {"jobs": jobs, "host": socket.gethostname()}

    def adopt(self, folder: Path) -> dict[str, Any] | None:
        for recorded in folder.glob(f"*/{JOBS_FILE}"):
            try:
                raw = json.loads(recorded.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            jobs = raw.get("jobs") if isinstance(raw, dict) and raw.get("launcher") == "slurm" else None
            if isinstance(jobs, dict) and jobs:
                return {"jobs": {s: str(v["job_id"]) for s, v in jobs.items() if isinstance(v, dict)}, "adopted": True}
        return None

    def poll(self, handle: dict[str, Any], bundle: Path, folder: Path) -> RunState:
        from planner.status import GONE, LIVE, read_json, slurm_states

        jobs: dict[str, str] = dict(handle.get("jobs") or {})
        if not jobs:
            return RunState(alive=False, exit_code=None, detail="no Slurm job was submitted")
        states = slurm_states(sorted(set(jobs.values()), key=int))
        live = [
            (stage, job) for stage, job in jobs.items() if states.get(job, ("UNKNOWN", ""))[0] in LIVE | {"UNKNOWN"}
        ]
        if live:
            stage, job = live[0]
            state, reason = states.get(job, ("UNKNOWN", ""))
            why = f" ({reason})" if reason and reason != "None" else ""
            # queued: nothing of the run has started (a requeued run that trained before is not queued again)
            waiting = all(states.get(j, ("UNKNOWN", ""))[0] in ("PENDING", "UNKNOWN") for j in jobs.values())
            queued = waiting and not any((bundle / "run" / s / "status.json").is_file() for s in jobs)
            return RunState(alive=True, detail=f"Slurm job {job} (stage {stage}) is {state}{why}", queued=queued)
        bad = []
        for stage, job in jobs.items():
            state, reason = states[job]
            if state == GONE:  # purged without accounting: the stage's own status says how it ended
                status = read_json(bundle / "run" / stage / "status.json")
                state = (
                    "COMPLETED"
                    if status.get("state") == "completed"
                    else f"GONE, stage {status.get('state', 'not run')}"
                )
            if state != _SLURM_OK:
                bad.append(f"{stage} (job {job}) {state}{f': {reason}' if reason and reason != 'None' else ''}")
        if not bad:
            return RunState(alive=False, exit_code=0)
        return RunState(alive=False, exit_code=1, detail="Slurm: " + "; ".join(bad))

    def cancel(self, handle: dict[str, Any], bundle: Path) -> str:
        """planner.cancel's way: scancel every job that may still run, the later stages first (a training stage
        gets SIGTERM, saves a checkpoint and ends cancelled)."""
        from planner.cancel import cancel_slurm
        from planner.status import load

        out = io.StringIO()
        with _STDOUT, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            cancel_slurm(load(bundle))
        return out.getvalue().strip()


_STDOUT = threading.Lock()  # redirect_stdout is process-wide: one capture at a time
EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "torchrun": LocalExecutor, "slurm": SlurmExecutor}


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RunState", "SlurmExecutor"]
