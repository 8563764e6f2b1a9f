"""Launcher `slurm`: one batch script per stage and a submit script that queues them in DAG order.

Renders templates/slurm/stage.sbatch.j2 into launch/<stage>.sbatch for each stage, and
templates/slurm/submit.sh.j2 into launch/submit.sh, which submits every stage with afterok on the
stages it needs. Reads from the plan: each stage's name, after, argv, `distributed` and resources
(nodes, gpus_per_node, hours) and stop (its lead: `#SBATCH --signal`, torchrun's --shutdown-timeout, the
requeue at the time limit), spec.inventory (GPU, CPUs and memory per node, partition, account,
time limit) and spec.launcher (python, cpus_per_task, rdzv_port, requeue, env_passthrough).
Also the check that sbatch reads a script's #SBATCH lines as written (sbatch_directives_ok).
"""

from __future__ import annotations

import math
import re

from planner.launchers.base import LOGS, Launcher, comment, common, plural, quote, runtime_args, shape, template
from schemas.plan import Plan, Stage

# Slurm's RealMemory sits below a node's physical memory: ask for a little less than the share.
MEMORY_HEADROOM = 0.9
GIB = 2**30
# The time-limit warning: Slurm sends it to every process of the job step (not the batch shell) `lead` seconds
# before the limit. SIGUSR1, not SIGTERM: `scancel` sends SIGTERM, and a cancel must not requeue. Verified on
# Slurm 22.05 with torch 2.13: the workers under srun + torchrun get it; torchrun, told to handle it, forwards it
# and waits --shutdown-timeout (its default is 30 s) before it kills them.
STOP_SIGNAL = "USR1"
TORCHRUN_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"  # torchrun's default list, and the warning
# sbatch reads #SBATCH lines without a shell: no quoting, no expansion. Only plain values go there.
_DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9._%,:=/+@-]+$")


def compile_slurm(plan: Plan) -> dict[str, str]:
    files = {f"launch/{stage.name}.sbatch": _sbatch(plan, stage, index) for index, stage in enumerate(plan.stages, 1)}
    stages = [{"name": s.name, "after": list(s.after)} for s in plan.stages]
    files["launch/submit.sh"] = template("slurm/submit.sh.j2", **common(plan), stages=stages)
    return files


def _sbatch(plan: Plan, stage: Stage, index: int) -> str:
    inventory, launcher = plan.spec.inventory, plan.spec.launcher
    nodes, per_node = shape(stage, LAUNCHER)
    gpus = per_node if inventory.gpu.name != "cpu" else 0  # on a CPU inventory a "GPU" is a process
    # A stage gets the CPUs and memory of the GPU slots it uses (at least one slot's worth).
    share = 1.0 if nodes > 1 else min(1.0, max(per_node, 1) / inventory.gpus_per_node)
    whole_node = share >= 1.0
    cpus = launcher.cpus_per_task or max(1, math.floor(inventory.cpus_per_node * share))
    # --mem=0: all of each node's memory; a smaller stage asks for its share of it.
    mem = "0" if whole_node else f"{_gib(inventory.memory_per_node_gb, share)}G"
    # One node: torchrun's standalone rendezvous (a free local port); several: c10d on the first host.
    torchrun = "none" if not stage.distributed else "c10d" if nodes > 1 else "standalone"
    time = _time_limit(stage, inventory.time_limit_hours)
    lead = _signal_lead(stage, time)
    if stage.distributed:
        described = f"{plural(nodes, 'node')} x {plural(per_node, 'GPU' if gpus else 'process')}"
    else:
        described = f"{plural(nodes, 'node')}, {plural(gpus, 'GPU') if gpus else 'no GPU'}"
    return template(
        "slurm/stage.sbatch.j2",
        **common(plan),
        stage=stage.name,
        index=index,
        after=list(stage.after),
        shape=comment(described),
        job_name=_directive(f"{plan.name}-{stage.name}"),
        nodes=nodes,
        gpus_per_node=gpus,
        cpus=cpus,
        mem=_directive(mem),
        time=_directive(time),
        signal=_directive(f"{STOP_SIGNAL}@{lead}") if lead else None,
        lead=lead,
        shutdown=f"--signals-to-handle {TORCHRUN_SIGNALS} --shutdown-timeout {lead}" if lead else "",
        keep_rc=" || rc=$?" if lead else "",
        partition=_directive(inventory.partition) if inventory.partition else None,
        account=_directive(inventory.account) if inventory.account else None,
        output=_directive(f"{LOGS}/{stage.name}-%j.out"),
        requeue=launcher.requeue,
        torchrun=torchrun,
        nproc=per_node,
        port=launcher.rdzv_port,
        python=quote(launcher.python),
        runtime_args=runtime_args(stage),
    )


def _signal_lead(stage: Stage, time: str) -> int:
    """Seconds before the time limit that Slurm signals a training stage (its plan's stop.lead_seconds; 0 for a
    stage that does not checkpoint), at most half the limit: a lead past the limit would stop the stage as it
    starts, and the runtime requeues only a stage that made progress."""
    if stage.stop is None:
        return 0
    hours, minutes, seconds = (int(part) for part in time.split(":"))
    return min(stage.stop.lead_seconds, max(1, (hours * 3600 + minutes * 60 + seconds) // 2))


def _gib(node_gb: float, share: float) -> int:
    """Whole GiB to ask for: the stage's share of a node's memory, less the headroom (at least 1)."""
    return max(1, math.floor(node_gb * 1e9 * share * MEMORY_HEADROOM / GIB))


def _time_limit(stage: Stage, cap_hours: float | None) -> str:
    """HH:MM:SS from the stage's hours, capped by the scheduler's limit, rounded up to a minute."""
    hours = stage.resources.get("hours", 1.0)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
        raise ValueError(f"stage {stage.name}: resources.hours must be a positive number, got {hours!r}")
    if cap_hours is not None:
        hours = min(hours, cap_hours)
    minutes = max(1, math.ceil(round(hours * 60, 6)))
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def _directive(value: str) -> str:
    if not _DIRECTIVE_VALUE.fullmatch(value):
        raise ValueError(
            f"{value!r} cannot go into an #SBATCH line (sbatch does not read quotes there): "
            "use letters, digits and . _ - , : = / + % @"
        )
    return value


def sbatch_directives_ok(text: str) -> list[str]:
    """Problems with a batch script's #SBATCH lines; [] when sbatch reads them all as written.

    sbatch stops reading directives at the first command, reads them only at the start of a line,
    and expands nothing in them: a directive after a command, an indented one, or one with `$`,
    quotes or backticks would be silently ignored or taken literally.
    """
    problems: list[str] = []
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#!"):
        problems.append("line 1: no #! interpreter line (sbatch needs one)")
    first_command = 0
    directives = 0
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith("#SBATCH"):
            directives += 1
            if first_command:
                problems.append(
                    f"line {number}: #SBATCH after the first command (line {first_command}): "
                    f"sbatch ignores it: {stripped}"
                )
            elif line != stripped and not line.startswith("#SBATCH"):
                problems.append(f"line {number}: indented #SBATCH: sbatch ignores it")
            elif not re.fullmatch(r"#SBATCH --[a-z-]+(=[A-Za-z0-9._%,:=/+@-]+)?", stripped):
                problems.append(f"line {number}: not a literal '#SBATCH --option[=value]': {stripped!r}")
        elif stripped and not stripped.startswith("#") and not first_command:
            first_command = number
    if not directives:
        problems.append("no #SBATCH lines")
    return problems


LAUNCHER = Launcher(
    kind="slurm",
    compile=compile_slurm,
    run_script="launch/submit.sh",
    templates=("slurm/stage.sbatch.j2", "slurm/submit.sh.j2"),
    multi_node=True,
    follow_with="squeue --me",
)
