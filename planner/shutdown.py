"""How a training stage stops before its scheduler time limit without losing work (schemas.plan.Stop). Pure.

At the limit Slurm sends SIGTERM and kills KillWait (30 s by default) later, and torchrun kills its workers
30 s after it forwards a signal: far too little for a full-SFT checkpoint of an 8B model (128 GB). So each
training stage is told to stop `lead_seconds` before its limit: the step in flight ends, one checkpoint is
written at knowledge.estimator.checkpoint_gb_per_minute, and a margin covers the exit and the requeue. The
launchers write the lead into `#SBATCH --signal` and torchrun's --shutdown-timeout; the runtime saves and the
job requeues (templates/slurm/stage.sbatch.j2).
"""

from __future__ import annotations

import math

from planner import estimator as est
from planner import walltime as wt
from schemas.method import TrainMethod
from schemas.plan import Estimate, Stop
from schemas.spec import Spec

MAX_LEAD = 65535  # Slurm keeps --signal's time in 16 bits


def stop_for(spec: Spec, method: TrainMethod, estimate: Estimate | None) -> Stop:
    """The stage's stop: its checkpoint size and write time, one step at the slow end of the estimate, the lead."""
    prior = spec.knowledge.estimator
    size = wt.checkpoint_bytes(spec.model.architecture, method)
    write = size / (prior.checkpoint_gb_per_minute * est.GB / 60)
    step = 0.0
    if estimate is not None and estimate.steps and estimate.wall_hours_range:
        # the slow end of the wall time, less the one-off model load, spread over the steps (eval and
        # checkpoint costs stay in: an overestimate of a step, on the safe side)
        training = estimate.wall_hours_range[1] * 3600 - prior.load_minutes * 60
        step = max(0.0, training) / estimate.steps
    lead = math.ceil(round(step + write + prior.stop_margin_seconds, 6))
    return Stop(
        checkpoint_bytes=size,
        checkpoint_seconds=round(write, 1),
        step_seconds=round(step, 1),
        lead_seconds=min(MAX_LEAD, max(1, lead)),
    )
