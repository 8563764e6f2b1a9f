"""Launcher `local`: one bash script that runs the plan's stages in order on this machine.

Renders templates/local/run.sh.j2 into launch/run_local.sh. A stage runs as a plain process under
the plan's interpreter, or under torchrun (standalone) when it is distributed over several
processes. Reads from the plan: each stage's name, argv, `distributed` and resources
(gpus_per_node; nodes must be 1), and spec.launcher (python, env_passthrough).
"""

from __future__ import annotations

from planner.launchers.base import Launcher, common, python, shape, shutdown, template, torchrun
from schemas.plan import Plan


def compile_local(plan: Plan) -> dict[str, str]:
    stages, multi = [], False
    for stage in plan.stages:
        _, per_node = shape(stage, LAUNCHER)
        if stage.distributed and per_node > 1:  # one process needs no torchrun
            command = torchrun(plan, stage, "--standalone", "--nproc-per-node", str(per_node), *shutdown(stage))
            multi = True
        else:
            command = python(plan, stage)
        stages.append({"name": stage.name, "command": command})
    return {
        "launch/run_local.sh": template("local/run.sh.j2", **common(plan), kind="local", stages=stages, multi=multi)
    }


LAUNCHER = Launcher(
    kind="local",
    compile=compile_local,
    run_script="launch/run_local.sh",
    templates=("local/run.sh.j2",),
)
