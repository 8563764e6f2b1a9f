"""Stand-ins for the programs a compiled bundle calls (python, srun, scontrol, sbatch, scancel).

Each fake is a small bash script that records how it was called and does nothing else, so a
test can execute a bundle's scripts for real and check what they would have run. Nothing here
imports torch.
"""

from __future__ import annotations

import shlex
from pathlib import Path

RS, US = "\x1e", "\x1f"  # record / unit separators: safe around arguments with spaces or newlines


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


def fake_python(path: Path, log: Path, fail_stage: str | None = None, real: tuple[str, ...] = (),
                interpreter: str = "", pythonpath: str = "") -> Path:
    """An interpreter that appends its $0 and argv to `log`; exits 1 for `--stage <fail_stage>`;
    hands the stages in `real` to the real `interpreter` (with `pythonpath`) after recording them."""
    fail = ""
    for stage in real:
        fail += (f'prev=""\nfor arg in "$@"; do\n'
                 f'    if [[ $prev == --stage && $arg == {shlex.quote(stage)} ]]; then\n'
                 f'        PYTHONPATH={shlex.quote(pythonpath)} exec {shlex.quote(interpreter)} "$@"\n'
                 f'    fi\n    prev=$arg\ndone\n')
    if fail_stage is not None:
        fail += (f'prev=""\nfor arg in "$@"; do\n'
                f'    if [[ $prev == --stage && $arg == {shlex.quote(fail_stage)} ]]; then exit 1; fi\n'
                f'    prev=$arg\ndone\n')
    return _script(path, f"{{ printf '%s\\x1f' \"$0\" \"$@\"; printf '\\x1e'; }} >> {shlex.quote(str(log))}\n{fail}")


def calls(log: Path) -> list[list[str]]:
    """The recorded invocations, each as [$0, arg1, ...]."""
    if not log.exists():
        return []
    text = log.read_bytes().decode()  # not read_text(): it would turn a '\r' in an argument into '\n'
    return [record.split(US)[:-1] for record in text.split(RS)[:-1]]


def stages_run(log: Path) -> list[str]:
    """The `--stage` argument of each recorded invocation, in order."""
    out = []
    for argv in calls(log):
        if "--stage" in argv:
            out.append(argv[argv.index("--stage") + 1])
    return out


def fake_slurm_bin(folder: Path, log: Path, fail_after: int | None = None) -> Path:
    """srun (drops its options, runs the rest), scontrol (one host), sbatch (prints ids 101, 102, ...;
    fails on call number `fail_after` + 1 when given) and scancel; sbatch/scancel calls go to `log`."""
    q = shlex.quote(str(log))
    _script(folder / "srun", 'while [[ $# -gt 0 && $1 == --* ]]; do shift; done\nexec "$@"\n')
    _script(folder / "scontrol", "echo node-0\n")
    counter = shlex.quote(str(folder / ".sbatch-count"))
    fail = f"if (( n > {fail_after} )); then echo 'sbatch: error: fake failure' >&2; exit 1; fi\n" \
        if fail_after is not None else ""
    _script(folder / "sbatch", f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 ))\necho \"$n\" > {counter}\n"
            f"{fail}{{ printf '%s\\x1f' sbatch \"$@\"; printf '\\x1e'; }} >> {q}\necho \"$((100 + n))\"\n")
    _script(folder / "scancel", f"{{ printf '%s\\x1f' scancel \"$@\"; printf '\\x1e'; }} >> {q}\n")
    return folder
