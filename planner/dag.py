"""The stage DAG: which stages a plan runs and in what order.

Ordering uses the standard library's graphlib (networkx costs 60 ms of import on every cold start,
a third of the planner's budget); the graph is small and only needs a stable topological order.
"""

from __future__ import annotations

from typing import Any

from planner.shutdown import stop_for
from schemas.plan import Artifacts, Layout, Stage, Stop
from schemas.spec import Spec

RUNTIME = ("python", "-m", "runtime", "plan.json", "--stage")


def build_stages(
    spec: Spec,
    pipeline: tuple[str, ...],
    layout: Layout,
    artifacts: Artifacts,
    extras: dict[str, dict[str, Any]],
    train_hours: float | None = None,
) -> tuple[Stage, ...]:
    """validate_data -> baseline_eval -> [train_sft ->] train -> eval -> gate -> publish.

    Every stage writes under run/<stage>/ (its status.json and outputs); inputs name the paths
    of earlier stages' outputs, so artifacts pass between stages by path. `extras` adds, per stage name,
    what the runtime executes (method, layout, estimate, prompt format, data, evaluation).
    """

    def _stage(
        name: str,
        after: tuple[str, ...],
        *,
        distributed: bool = False,
        gpus: int = 0,
        nodes: int = 1,
        hours: float = 1.0,
        inputs: dict | None = None,
        outputs: dict | None = None,
        stop: Stop | None = None,
    ) -> Stage:
        return Stage(
            name=name,
            after=after,
            argv=(*RUNTIME, name),
            distributed=distributed,
            resources={"nodes": nodes, "gpus_per_node": gpus, "hours": hours},
            inputs=inputs or {},
            outputs=outputs or {},
            stop=stop,
            **extras.get(name, {}),
        )

    eval_gpus = 1 if spec.inventory.gpu.name != "cpu" else 0
    stages = [_stage("validate_data", (), outputs={"report": "run/validate_data/report.json"})]
    stages.append(
        _stage("baseline_eval", ("validate_data",), gpus=eval_gpus, outputs={"scores": "run/baseline_eval/scores.json"})
    )
    gate_inputs = {"baseline": "run/baseline_eval/scores.json", "tuned": "run/eval/scores.json"}
    if not pipeline:  # prompting / rag: evaluation plan only
        stages.append(_stage("eval", ("baseline_eval",), gpus=eval_gpus, outputs={"scores": "run/eval/scores.json"}))
        stages.append(
            _stage("gate", ("baseline_eval", "eval"), inputs=gate_inputs, outputs={"verdict": artifacts.gate})
        )
        return _checked(stages)
    weights = artifacts.adapter_dir or artifacts.model_dir or "run/train/model"

    def placed(name: str) -> dict[str, Any]:
        """A training stage's devices from its own layout, how it stops before its time limit (planner.shutdown),
        and the scheduler's time limit: the estimate's upper bound plus half, plus the stop's lead, rounded up to
        a quarter hour."""
        own = extras.get(name, {})
        lay = own.get("layout") or layout
        estimate = own.get("estimate")
        high = estimate.wall_hours_range[1] if estimate is not None and estimate.wall_hours_range else train_hours
        method = own.get("method")
        stop = stop_for(spec, method, estimate) if method is not None else None
        lead_hours = stop.lead_seconds / 3600 if stop is not None else 0.0
        return {
            "distributed": True,
            "gpus": lay.gpus_per_node,
            "nodes": lay.nodes,
            "hours": max(0.5, -(-((high or 0.5) * 1.5 + lead_hours) // 0.25) * 0.25),
            "stop": stop,
        }

    train_after: tuple[str, ...] = ("validate_data",)
    train_inputs: dict[str, str] = {}
    if artifacts.sft_base_dir:
        stages.append(
            _stage(
                "train_sft",
                ("validate_data",),
                **placed("train_sft"),
                outputs={
                    "model": artifacts.sft_base_dir,
                    "checkpoints": "run/train_sft/checkpoints",
                    "metrics": "run/train_sft/metrics.jsonl",
                },
            )
        )
        train_after, train_inputs = ("train_sft",), {"base": artifacts.sft_base_dir}
    stages.append(
        _stage(
            "train",
            train_after,
            **placed("train"),
            inputs=train_inputs,
            outputs={"weights": weights, "checkpoints": "run/train/checkpoints", "metrics": artifacts.metrics},
        )
    )
    stages.append(
        _stage(
            "eval",
            ("train", "baseline_eval"),
            gpus=eval_gpus,
            inputs={"weights": weights},
            outputs={"scores": "run/eval/scores.json"},
        )
    )
    stages.append(
        _stage(
            "gate", ("eval",), inputs={**gate_inputs, "metrics": artifacts.metrics}, outputs={"verdict": artifacts.gate}
        )
    )
    stages.append(
        _stage(
            "publish",
            ("gate",),
            inputs={"weights": weights},
            outputs={"model": artifacts.published_dir or "run/publish"},
        )
    )
    return _checked(stages)


def _checked(stages: list[Stage]) -> tuple[Stage, ...]:
    """Order topologically (stable: ties keep their listed order) and refuse cycles or dangling deps."""
    from graphlib import CycleError, TopologicalSorter

    names = [s.name for s in stages]
    missing = {dep for s in stages for dep in s.after} - set(names)
    if missing:
        raise ValueError(f"bad stage graph: {sorted(missing)} not defined")
    sorter = TopologicalSorter({s.name: s.after for s in stages})
    try:
        sorter.prepare()
    except CycleError as exc:
        raise ValueError(f"stage graph has a cycle: {exc.args[1]}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=names.index)
        order.extend(ready)
        sorter.done(*ready)
    by_name = {s.name: s for s in stages}
    return tuple(by_name[n] for n in order)
