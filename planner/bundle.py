"""The I/O edge of compiling: write a rendered bundle atomically, and launch it.

`write_bundle` never leaves a half-written bundle where the runtime or a reviewer could read it:
it writes into a temporary folder next to the target and renames it into place. `launch` runs
the bundle's own script (run_local.sh, run_torchrun.sh, or submit.sh for Slurm), so what runs is
exactly what a person would run by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from planner.render import resolve_launcher
from schemas.plan import Plan

EXECUTABLE = (".sh", ".sbatch")
RUN_SCRIPT = {"local": "launch/run_local.sh", "torchrun": "launch/run_torchrun.sh", "slurm": "launch/submit.sh"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def write_bundle(files: Mapping[str, str], out_dir: Path, name: str) -> Path:
    """Write `files` (relative path -> text) as `<out_dir>/<name>`, replacing any previous bundle."""
    if ".." in name or not _NAME.match(name):
        raise ValueError(f"bundle name {name!r} is not a safe folder name")
    for rel in files:
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"bundle path {rel!r} must be relative, inside the bundle")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".new", dir=out_dir))
    try:
        staging.chmod(0o755)
        for rel, text in sorted(files.items()):
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            path.chmod(0o755 if rel.endswith(EXECUTABLE) else 0o644)
        if target.exists() or target.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=out_dir))
            aside = old / "bundle"
            os.rename(target, aside)  # same filesystem: atomic
            os.rename(staging, target)
            _remove(old)
        else:
            os.rename(staging, target)
    except BaseException:
        _remove(staging)
        raise
    return target


def launch(bundle_dir: Path, plan: Plan) -> int:
    """Run the bundle: local/torchrun run every stage here; slurm submits them. Returns the exit code."""
    kind = resolve_launcher(plan)
    script = Path(bundle_dir) / RUN_SCRIPT[kind]
    if not script.is_file():
        sys.stderr.write(f"launch: {script} is missing: recompile the bundle\n")
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    # stdout and stderr are inherited: stage output (or the "<stage> <job id>" lines) streams through.
    code = subprocess.run(["bash", str(script)], check=False).returncode
    if kind == "slurm" and code == 0:
        sys.stderr.write(f"submitted; follow with: squeue --me; logs in {Path(bundle_dir) / 'logs'}\n")
    elif code != 0:
        sys.stderr.write(f"launch: {script.name} exited with status {code}\n")
    return code


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


__all__ = ["launch", "write_bundle"]
