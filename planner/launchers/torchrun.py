"""Launcher `torchrun`: one bash script that runs the plan's stages in order on one GPU node.

Renders templates/torchrun/run.sh.j2 into launch/run_torchrun.sh. A distributed stage runs under
torchrun (standalone rendezvous, one node, its GPUs per node), any other as a plain process. Reads
from the plan: each stage's name, argv, `distributed` and resources (gpus_per_node; nodes must
be 1), and spec.launcher (python, env_passthrough).
"""

from __future__ import annotations

from planner.launchers.base import Launcher, common, python, shape, shutdown, template, torchrun
from schemas.plan import Plan


def compile_torchrun(plan: Plan) -> dict[str, str]:
    stages = []
    for stage in plan.stages:
        _, per_node = shape(stage, LAUNCHER)
        if stage.distributed:
            command = torchrun(
                plan, stage, "--standalone", "--nnodes", "1", "--nproc-per-node", str(per_node), *shutdown(stage)
            )
        else:
            command = python(plan, stage)
        stages.append({"name": stage.name, "command": command})
    return {"launch/run_torchrun.sh": template("torchrun/run.sh.j2", **common(plan), kind="torchrun", stages=stages)}


LAUNCHER = Launcher(
    kind="torchrun",
    compile=compile_torchrun,
    run_script="launch/run_torchrun.sh",
    templates=("torchrun/run.sh.j2",),
)
