"""render(plan, report_md) -> {relative path: text}: the launch bundle, byte for byte.

Pure: the same plan gives the same bytes (no clock, no environment, no absolute paths; the only
files read are the shipped templates), so a bundle is reproducible and relocatable. Python decides every value and shell-quotes each one that
reaches a script; the jinja templates under templates/ only place values and loop. Launchers are a
closed registry (LAUNCHERS) keyed by schemas.launcher.LauncherKind.
"""

from __future__ import annotations

import functools
import math
import re
import shlex
from collections.abc import Callable, Iterable

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from planner.errors import ConfigError
from planner.paths import templates_dir
from schemas.plan import Plan, Stage

GENERATOR = "ladder-planner (planner/render.py)"
LOGS = "logs"
# Slurm's RealMemory sits below a node's physical memory: ask for a little less than the share.
MEMORY_HEADROOM = 0.9
GIB = 2**30

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# sbatch reads #SBATCH lines without a shell: no quoting, no expansion. Only plain values go there.
_DIRECTIVE_VALUE = re.compile(r"^[A-Za-z0-9._%,:=/+-]+$")


def resolve_launcher(plan: Plan) -> str:
    """The launcher kind the planner resolved (planner.core.resolve_launcher)."""
    return plan.decision.launcher


def render(plan: Plan, report_md: str, scripts: bool = True) -> dict[str, str]:
    """Every file of the bundle, keyed by its path relative to the bundle folder (sorted).
    scripts=False leaves out launch/ (an infeasible plan is written for review, not to run)."""
    _check_stages(plan.stages)
    files = {
        "plan.json": plan.model_dump_json(indent=2) + "\n",
        "config.yaml": _config_yaml(plan),
        "report.md": report_md,
        **(LAUNCHERS[resolve_launcher(plan)](plan) if scripts else {}),
    }
    return dict(sorted(files.items()))


# --- the launchers ------------------------------------------------------------------------------


def _compile_local(plan: Plan) -> dict[str, str]:
    stages, multi = [], False
    for stage in plan.stages:
        _, per_node = _shape(plan, stage, "local")
        if stage.distributed and per_node > 1:  # one process needs no torchrun
            command = _torchrun_command(plan, stage, "--standalone", "--nproc-per-node", str(per_node))
            multi = True
        else:
            command = _python(plan, stage)
        stages.append({"name": stage.name, "command": command})
    return {"launch/run_local.sh": _template("local/run.sh.j2", **_common(plan), stages=stages, multi=multi)}


def _torchrun_command(plan: Plan, stage: Stage, *options: str) -> str:
    """`<python> -m torch.distributed.run ...`: torchrun, but under the plan's own interpreter."""
    return " ".join([_q(plan.spec.launcher.python), "-m", "torch.distributed.run", *options, _runtime_args(stage)])


def _compile_torchrun(plan: Plan) -> dict[str, str]:
    stages = []
    for stage in plan.stages:
        _, per_node = _shape(plan, stage, "torchrun")
        if stage.distributed:
            command = _torchrun_command(plan, stage, "--standalone", "--nnodes", "1", "--nproc-per-node",
                                        str(per_node))
        else:
            command = _python(plan, stage)
        stages.append({"name": stage.name, "command": command})
    return {"launch/run_torchrun.sh": _template("torchrun/run.sh.j2", **_common(plan), stages=stages)}


def _compile_slurm(plan: Plan) -> dict[str, str]:
    files = {f"launch/{stage.name}.sbatch": _sbatch(plan, stage, index)
             for index, stage in enumerate(plan.stages, start=1)}
    stages = [{"name": s.name, "after": list(s.after)} for s in plan.stages]
    files["launch/submit.sh"] = _template("slurm/submit.sh.j2", **_common(plan), stages=stages)
    return files


def _sbatch(plan: Plan, stage: Stage, index: int) -> str:
    inventory, launcher = plan.spec.inventory, plan.spec.launcher
    nodes, per_node = _shape(plan, stage, "slurm")
    gpus = per_node if inventory.gpu.name != "cpu" else 0  # on a CPU inventory a "GPU" is a process
    # A stage gets the CPUs and memory of the GPU slots it uses (at least one slot's worth).
    share = 1.0 if nodes > 1 else min(1.0, max(per_node, 1) / inventory.gpus_per_node)
    whole_node = share >= 1.0
    cpus = launcher.cpus_per_task or max(1, math.floor(inventory.cpus_per_node * share))
    # --mem=0: all of each node's memory; a smaller stage asks for its share of it.
    mem = "0" if whole_node else \
        f"{max(1, math.floor(inventory.memory_per_node_gb * 1e9 * share * MEMORY_HEADROOM / GIB))}G"
    # One node: torchrun's standalone rendezvous (a free local port); several: c10d on the first host.
    torchrun = "none" if not stage.distributed else "c10d" if nodes > 1 else "standalone"
    if stage.distributed:
        shape = f"{_plural(nodes, 'node')} x {_plural(per_node, 'GPU' if gpus else 'process')}"
    else:
        shape = f"{_plural(nodes, 'node')}, {_plural(gpus, 'GPU') if gpus else 'no GPU'}"
    return _template(
        "slurm/stage.sbatch.j2", **_common(plan),
        stage=stage.name, index=index, after=list(stage.after), shape=_comment(shape),
        job_name=_directive(f"{plan.name}-{stage.name}"),
        nodes=nodes, gpus_per_node=gpus, cpus=cpus, mem=_directive(mem),
        time=_directive(_time_limit(stage, inventory.time_limit_hours)),
        partition=_directive(inventory.partition) if inventory.partition else None,
        account=_directive(inventory.account) if inventory.account else None,
        output=_directive(f"{LOGS}/{stage.name}-%j.out"),
        requeue=launcher.requeue,
        torchrun=torchrun, nproc=per_node, port=launcher.rdzv_port,
        python=_q(launcher.python), runtime_args=_runtime_args(stage),
    )


# Launcher kind (schemas.launcher.LauncherKind, less `auto`) -> the launch/ files it compiles to.
LAUNCHERS: dict[str, Callable[[Plan], dict[str, str]]] = {
    "local": _compile_local,
    "torchrun": _compile_torchrun,
    "slurm": _compile_slurm,
}


# --- checks on the output -----------------------------------------------------------------------


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
                problems.append(f"line {number}: #SBATCH after the first command (line {first_command}): "
                                f"sbatch ignores it: {stripped}")
            elif line != stripped and not line.startswith("#SBATCH"):
                problems.append(f"line {number}: indented #SBATCH: sbatch ignores it")
            elif not re.fullmatch(r"#SBATCH --[a-z-]+(=[A-Za-z0-9._%,:=/+-]+)?", stripped):
                problems.append(f"line {number}: not a literal '#SBATCH --option[=value]': {stripped!r}")
        elif stripped and not stripped.startswith("#") and not first_command:
            first_command = number
    if not directives:
        problems.append("no #SBATCH lines")
    return problems


# --- helpers ------------------------------------------------------------------------------------


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _template(name: str, **values: object) -> str:
    return _environment().get_template(name).render(**values)


def _common(plan: Plan) -> dict[str, object]:
    names = plan.spec.launcher.env_passthrough
    if names:
        env = (f"Environment: {', '.join(names)} pass through from the calling shell; "
               "their values are never written into this bundle.")
    else:
        env = "Environment: the calling shell's; nothing from it is written into this bundle."
    return {"generator": GENERATOR, "plan_id": _comment(plan.id), "plan_name": _comment(plan.name),
            "count": len(plan.stages), "env_comment": _comment(env)}


def _q(value: str) -> str:
    return shlex.quote(value)


def _runtime_args(stage: Stage) -> str:
    """The stage's argv after the interpreter (`-m runtime plan.json --stage NAME`), quoted."""
    if not stage.argv or stage.argv[0] != "python":
        raise ValueError(f"stage {stage.name}: argv must start with 'python' (the launcher's interpreter "
                         f"replaces it), got {list(stage.argv)}")
    return " ".join(_q(arg) for arg in stage.argv[1:])


def _python(plan: Plan, stage: Stage) -> str:
    return f"{_q(plan.spec.launcher.python)} {_runtime_args(stage)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('s') else 's'}"


def _count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _shape(plan: Plan, stage: Stage, kind: str) -> tuple[int, int]:
    """(nodes, GPUs or processes per node) of a stage; one node unless the launcher is Slurm."""
    nodes = _count(stage.resources.get("nodes", 1), f"stage {stage.name}: resources.nodes", 1)
    per_node = _count(stage.resources.get("gpus_per_node", 0), f"stage {stage.name}: resources.gpus_per_node",
                      1 if stage.distributed else 0)
    if nodes > 1 and kind != "slurm":
        raise ConfigError(
            f"launcher {kind} runs on one machine, but stage {stage.name} needs {nodes} nodes",
            path="launcher.kind",
            fix="use launcher=slurm for a multi-node layout, or pin layout.nodes=1",
        )
    return nodes, per_node


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
        raise ValueError(f"{value!r} cannot go into an #SBATCH line (sbatch does not read quotes there): "
                         "use letters, digits and . _ - , : = / + %")
    return value


def _comment(text: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"a comment line cannot hold a line break: {text!r}")
    return text


def _check_stages(stages: Iterable[Stage]) -> None:
    """Names that can be file names and shell words; each stage after the ones it needs."""
    seen: set[str] = set()
    for stage in stages:
        if not _SAFE_NAME.fullmatch(stage.name) or stage.name in seen:
            raise ValueError(f"stage name {stage.name!r} is not a unique safe name")
        missing = [dep for dep in stage.after if dep not in seen]
        if missing:
            raise ValueError(f"stage {stage.name} comes before {', '.join(missing)}, which it needs")
        seen.add(stage.name)


def _config_yaml(plan: Plan) -> str:
    header = (f"# Generated by {GENERATOR} from plan {plan.id} ({plan.name}).\n"
              "# The resolved configuration the plan was made from: a record, not an input\n"
              "# (the runtime reads plan.json, which carries the same spec).\n")
    body = yaml.safe_dump(plan.spec.model_dump(mode="json"), sort_keys=True, default_flow_style=False,
                          allow_unicode=True)
    return header + body


__all__ = ["LAUNCHERS", "render", "resolve_launcher", "sbatch_directives_ok"]
