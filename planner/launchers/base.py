"""What every launcher shares: the interface (Launcher), the templates, and the quoting and shape helpers.

A launcher turns a plan into the files under launch/ that run its stages: Python decides every value
and shell-quotes each one that reaches a script; the jinja templates under templates/<kind>/ only
place values and loop. Everything here is pure: no clock, no environment, no absolute paths.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from planner.errors import ConfigError
from planner.paths import templates_dir
from planner.secrets import required_env
from schemas.plan import Plan, Stage

# Named in the first lines of every generated file: planner/render.py is the bundle's one entry point.
GENERATOR = "ladder-planner (planner/render.py)"
LOGS = "logs"


@dataclass(frozen=True)
class Launcher:
    """One way to run a bundle's stages; planner.launchers.LAUNCHERS holds one per schemas.launcher.LauncherKind."""

    kind: str  # its schemas.launcher.LauncherKind
    compile: Callable[[Plan], dict[str, str]]  # the plan -> its launch/ files (path in the bundle -> text)
    run_script: str  # what `launch=true` runs (`bash <run_script>`), and a person by hand
    templates: tuple[str, ...]  # the templates it renders, under templates/
    multi_node: bool = False  # whether a stage may span several nodes
    follow_with: str = ""  # a queueing launcher's script returns once jobs are queued: the command to follow them


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


def template(name: str, **values: object) -> str:
    """templates/<name> rendered with `values` (each one already decided and quoted)."""
    return _environment().get_template(name).render(**values)


def common(plan: Plan) -> dict[str, object]:
    """The header values every script template takes: generator, plan id and name, stage count, environment."""
    names = plan.spec.launcher.env_passthrough
    if names:
        env = (
            f"Environment: {', '.join(names)} pass through from the calling shell; "
            "their values are never written into this bundle."
        )
    else:
        env = "Environment: the calling shell's; nothing from it is written into this bundle."
    return {
        "generator": GENERATOR,
        "plan_id": comment(plan.id),
        "plan_name": comment(plan.name),
        "count": len(plan.stages),
        "env_comment": comment(env),
        "env_check": env_check(required_env(plan.spec)),
    }


def env_check(names: tuple[str, ...]) -> str:
    """Shell lines that stop the script when a variable the plan refers to (`${oc.env:NAME}`, planner.secrets) is
    unset; they name the variable and never print its value. Empty when the plan refers to none."""
    if not names:
        return ""
    return "\n".join(
        [
            "# The plan refers to these environment variables by name; their values never go into the bundle.",
            f"for name in {' '.join(quote(n) for n in names)}; do",
            "    if [[ -z ${!name:-} ]]; then",
            '        echo "environment variable $name is not set; the plan needs it at run time: export it, '
            'then run this again" >&2',
            "        exit 2",
            "    fi",
            "done",
        ]
    )


def quote(value: str) -> str:
    return shlex.quote(value)


def runtime_args(stage: Stage) -> str:
    """The stage's argv after the interpreter (`-m runtime plan.json --stage NAME`), quoted."""
    if not stage.argv or stage.argv[0] != "python":
        raise ValueError(
            f"stage {stage.name}: argv must start with 'python' (the launcher's interpreter "
            f"replaces it), got {list(stage.argv)}"
        )
    return " ".join(quote(arg) for arg in stage.argv[1:])


def python(plan: Plan, stage: Stage) -> str:
    """The stage as a plain process under the plan's interpreter."""
    return f"{quote(plan.spec.launcher.python)} {runtime_args(stage)}"


def torchrun(plan: Plan, stage: Stage, *options: str) -> str:
    """`<python> -m torch.distributed.run ...`: torchrun, but under the plan's own interpreter."""
    return " ".join([quote(plan.spec.launcher.python), "-m", "torch.distributed.run", *options, runtime_args(stage)])


def shutdown(stage: Stage) -> tuple[str, ...]:
    """torchrun's grace period for a training stage: the plan's stop lead (schemas.plan.Stop), not torchrun's
    30 s default, between forwarding SIGTERM to its workers and killing them; none for other stages."""
    return ("--shutdown-timeout", str(stage.stop.lead_seconds)) if stage.stop is not None else ()


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}{'es' if word.endswith('s') else 's'}"


def _count(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def shape(stage: Stage, launcher: Launcher) -> tuple[int, int]:
    """(nodes, GPUs or processes per node) of a stage; one node unless the launcher spans several."""
    nodes = _count(stage.resources.get("nodes", 1), f"stage {stage.name}: resources.nodes", 1)
    per_node = _count(
        stage.resources.get("gpus_per_node", 0),
        f"stage {stage.name}: resources.gpus_per_node",
        1 if stage.distributed else 0,
    )
    if nodes > 1 and not launcher.multi_node:
        raise ConfigError(
            f"launcher {launcher.kind} runs on one machine, but stage {stage.name} needs {nodes} nodes",
            path="launcher.kind",
            fix="use launcher=slurm for a multi-node layout, or pin layout.nodes=1",
        )
    return nodes, per_node


def comment(text: str) -> str:
    """`text` for a comment line: refused if it holds a line break (the rest would run as a command)."""
    if "\n" in text or "\r" in text:
        raise ValueError(f"a comment line cannot hold a line break: {text!r}")
    return text
