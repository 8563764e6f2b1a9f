"""The I/O edge of compiling: write a rendered bundle atomically, and launch it.

A bundle is the record of a run. `write_bundle` writes a new bundle into a temporary folder next
to the target and renames it into place. Re-planning into an existing bundle rewrites only the
compiled files (plan.json, config.yaml, reports, launch/), each atomically (a temporary file in
the same folder + os.replace; launch/ swapped as a whole folder, so no stale script survives), and
keeps everything else: run/ (status, checkpoints, weights, gate, publish) and logs/. Everything is
written before anything is replaced, so a failure leaves the bundle as it was. `remove_results`
(overwrite=true) is the one way to drop run/ and logs/. `launch` runs the bundle's own script (its
launcher's run_script: run_local.sh, run_torchrun.sh, submit.sh for Slurm), so what runs is exactly
what a person would run by hand; stages that already completed for this plan skip themselves (runtime).
`running` says whether a run of the bundle is live (its run script holds run/.lock, or a stage run by hand holds
run/<stage>/.lock): launch=true and overwrite=true refuse then (BUSY), and the run script itself refuses too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from planner.errors import ConfigError, os_error
from planner.launchers import LAUNCHERS
from schemas.plan import Plan

EXECUTABLE = (".sh", ".sbatch")
# Launcher kind -> the script `launch` runs (runtime.context.RUN_SCRIPTS keeps a copy: the runtime imports no planner).
RUN_SCRIPT = {kind: launcher.run_script for kind, launcher in LAUNCHERS.items()}
# Folders the compiler owns whole (swapped on re-plan), and the results it never touches (overwrite=true
# removes them).
COMPILED_DIRS = ("launch",)
# Written by the launch scripts, not compiled: the jobs or process a launch started (planner.status, planner.cancel
# read it). Re-planning keeps it in the new launch/, so running jobs stay findable.
JOBS = "launch/jobs.json"
RESULTS = ("run", "logs")
# Exit code of a launch refused because the bundle is running (the run scripts and runtime.context.BUSY use it too).
BUSY = 75
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def write_bundle(files: Mapping[str, str], out_dir: Path, name: str) -> Path:
    """Write `files` (relative path -> text) as `<out_dir>/<name>`. An existing bundle keeps its results
    (run/, logs/ and anything else not compiled); its compiled files are replaced."""
    if ".." in name or not _NAME.match(name):
        raise ValueError(f"bundle name {name!r} is not a safe folder name")
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bundle path {rel!r} must be relative, inside the bundle")
        if parts[0] in RESULTS:
            raise ValueError(f"bundle path {rel!r} is under {parts[0]}/, which holds results, not compiled files")
    out_dir = Path(out_dir)
    created = [p for p in [out_dir, *out_dir.parents] if not (p.exists() or p.is_symlink())]
    try:
        return _write_bundle(files, out_dir, name)
    except OSError as exc:
        for folder in created:  # nothing half-made stays behind: the folders this call created, if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise os_error(exc, "write the bundle", out_dir / name) from None


def _write_bundle(files: Mapping[str, str], out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    if target.is_dir():
        _update(files, target)
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".new", dir=out_dir))
    try:
        staging.chmod(0o755)
        _write_files(staging, files)
        if target.exists() or target.is_symlink():  # a stray file or dangling link where the bundle goes
            old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=out_dir))
            os.rename(target, old / "bundle")  # same filesystem: atomic
            os.rename(staging, target)
            _remove(old)
        else:
            os.rename(staging, target)
    except BaseException:
        _remove(staging)
        raise
    return target


def remove_results(bundle: Path) -> list[str]:
    """overwrite=true: drop the bundle's results (run/, logs/) to start over. Each folder is renamed aside
    first (atomic), so a half-deleted run/ is never left under its name. Returns the names removed."""
    try:
        return _remove_results(bundle)
    except OSError as exc:
        raise os_error(exc, "remove the results of", bundle) from None


def _remove_results(bundle: Path) -> list[str]:
    removed = []
    for folder in RESULTS:
        path = Path(bundle) / folder
        if not (path.exists() or path.is_symlink()):
            continue
        aside = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".old", dir=bundle))
        os.rename(path, aside / folder)
        _remove(aside)
        removed.append(f"{folder}/")
    return removed


def _write_files(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        path.chmod(0o755 if rel.endswith(EXECUTABLE) else 0o644)


def _update(files: Mapping[str, str], bundle: Path) -> None:
    """Rewrite the compiled files of an existing bundle in place, leaving its results alone.

    Top-level files are replaced one by one (temporary file in the bundle + os.replace); each compiled
    folder (launch/, or any folder `files` names) is written whole beside the old one and swapped in, and
    an old launch/ that the new compile has none of (an infeasible plan) is removed. Every new file is
    written before the first replace, so an error while writing leaves the bundle untouched."""
    top = {rel: text for rel, text in files.items() if len(PurePosixPath(rel).parts) == 1}
    for rel in top:
        if (bundle / rel).is_dir() and not (bundle / rel).is_symlink():
            raise ConfigError(
                f"{bundle / rel} is a folder where the compiled file {rel} goes", path="out_dir", fix="move it away"
            )
    folders = sorted({PurePosixPath(rel).parts[0] for rel in files if rel not in top} | set(COMPILED_DIRS))
    staged_files: list[tuple[Path, Path]] = []
    staged_dirs: list[tuple[Path | None, Path]] = []
    try:
        for folder in folders:
            inside = {
                str(PurePosixPath(*PurePosixPath(rel).parts[1:])): text
                for rel, text in files.items()
                if PurePosixPath(rel).parts[0] == folder and rel not in top
            }
            if not inside:
                staged_dirs.append((None, bundle / folder))
                continue
            folder_new = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".new", dir=bundle))
            staged_dirs.append((folder_new, bundle / folder))
            folder_new.chmod(0o755)
            _write_files(folder_new, inside)
            jobs = bundle / JOBS
            if PurePosixPath(JOBS).parts[0] == folder and JOBS not in files and jobs.is_file():
                shutil.copy2(jobs, folder_new / PurePosixPath(JOBS).name)
        for rel, text in sorted(top.items()):
            fd, tmp_name = tempfile.mkstemp(prefix=f".{rel}.", suffix=".new", dir=bundle)
            staged_files.append((Path(tmp_name), bundle / rel))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            os.chmod(tmp_name, 0o755 if rel.endswith(EXECUTABLE) else 0o644)
    except BaseException:
        for staged, _ in staged_files:
            _remove(staged)
        for staged_dir, _ in staged_dirs:
            if staged_dir is not None:
                _remove(staged_dir)
        raise
    # Everything is on disk: swap it in. plan.json goes last, so a bundle whose plan is new is new throughout.
    for new, dest in staged_dirs:
        old: Path | None = None
        if dest.exists() or dest.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=bundle))
            os.rename(dest, old / dest.name)
        if new is not None:
            os.rename(new, dest)
        if old is not None:
            _remove(old)
    for tmp, dest in sorted(staged_files, key=lambda pair: pair[1].name == "plan.json"):
        os.replace(tmp, dest)


def launch(bundle_dir: Path, plan: Plan, stdout_is_data: bool = False) -> int:
    """Run the bundle: local/torchrun run every stage here; slurm submits them. Returns the exit code.
    `stdout_is_data` (report=json): the stages' output goes to stderr, so stdout holds the plan and nothing else."""
    launcher = LAUNCHERS[plan.decision.launcher]
    script = Path(bundle_dir) / launcher.run_script
    if not script.is_file():
        sys.stderr.write(f"launch: {script} is missing: recompile the bundle\n")
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    # stderr is inherited, and stdout too unless it carries data: stage output (or the "<stage> <job id>" lines)
    # streams through.
    out = sys.stderr if stdout_is_data else None
    code = subprocess.run(["bash", str(script)], check=False, stdout=out).returncode
    if launcher.follow_with and code == 0:
        sys.stderr.write(f"submitted; follow with: {launcher.follow_with}; logs in {Path(bundle_dir) / 'logs'}\n")
    elif code != 0:
        sys.stderr.write(f"launch: {script.name} exited with status {code}\n")
    return code


def running(bundle: Path) -> tuple[str, str] | None:
    """(pid, what) of a live run of the bundle: the run script holding run/.lock, or a stage holding
    run/<stage>/.lock; None when no lock is held (the kernel drops a lock when its holder dies, even by SIGKILL)."""
    run = Path(bundle) / "run"
    for path in [run / ".lock", *sorted(run.glob("*/.lock"))]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                return pid, "its run script" if path.parent == run else f"its stage {path.parent.name}"
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    return None


def busy_message(bundle: Path, pid: str, what: str, action: str) -> str:
    """Why `action` is refused while the bundle runs, with the commands that watch and stop the run."""
    quoted = shlex.quote(str(bundle))
    return (
        f"error: {bundle} is running ({what}, pid {pid}): {action} would overwrite its checkpoints and status.\n"
        f"  watch it: python -m planner.status {quoted}\n"
        f"  stop it: python -m planner.cancel {quoted} (or kill -TERM {pid}), then run this again\n"
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


__all__ = ["BUSY", "busy_message", "launch", "remove_results", "running", "write_bundle"]
