"""plan(spec, stats) -> Plan: pure. No I/O, no clock, no environment, no torch.

Order: pick the customization config, climb the ladder, lay out and estimate the training
stages, run every feasibility check, build the stage DAG, hash the inputs into the plan id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache

from planner import estimator as est
from planner import ladder as ladder_mod
from planner import layout as layout_mod
from planner import resolve
from planner.dag import build_stages
from schemas.data import DataStats
from schemas.method import TRAIN_KINDS, Dpo, Grpo, Prompting, Rag, TrainMethod
from schemas.model import URN, CustomizationConfig
from schemas.plan import (
    Alternative,
    Artifacts,
    Decision,
    Estimate,
    Finding,
    Layout,
    MemoryBreakdown,
    Plan,
    Evaluation,
    PromptFormat,
    ServingPlan,
    StageData,
)
from schemas.spec import Spec

GB = est.GB


@dataclass
class TrainStage:
    """One training stage as planned: its resolved recipe, its own layout and estimate."""

    name: str  # train | train_sft
    kind: str
    recipe: resolve.Recipe  # before the layout: what the user and the config asked for
    seq: int
    layout_result: layout_mod.Result | None = None
    candidate: layout_mod.Candidate | None = None
    option: object | None = None
    layout: Layout | None = None
    estimate: Estimate | None = None
    final: resolve.Recipe | None = None  # every value the trainer reads, filled from the layout and the data

    @property
    def method(self) -> TrainMethod:
        return (self.final or self.recipe).method


@dataclass
class Draft:
    """Everything derived before the checks run; the checks read it, never change it."""

    spec: Spec
    stats: DataStats
    config: CustomizationConfig | None
    config_source: str  # explicit | matched (by GPU class) | foreign (no config for this GPU class)
    config_findings: list[Finding]
    method_kind: str
    train: TrainMethod | None  # the last training stage's recipe (as asked, before the layout fills it in)
    pipeline: tuple[str, ...]
    ladder: ladder_mod.LadderResult
    prompt: PromptFormat | None = None
    stages: tuple[TrainStage, ...] = ()
    layout_result: layout_mod.Result | None = None
    candidate: layout_mod.Candidate | None = None
    option: object | None = None
    gpu_hours: float | None = None  # the whole pipeline (an SFT base stage included)
    wall_hours: float | None = None

    @property
    def main(self) -> TrainStage | None:
        return self.stages[-1] if self.stages else None

    @property
    def precision(self) -> str:
        if self.spec.inventory.gpu.name == "cpu":
            return "fp32"
        return self.config.precision if self.config else "bf16-mixed"

    @property
    def max_seq(self) -> int:
        """The sequence cap of the last training stage (the user's, the config's, or 4096)."""
        if self.train is not None:
            return resolve.seq_cap(self.spec, self.train, self.config)
        if self.config:
            return self.config.max_seq_length
        return min(4096, self.spec.model.architecture.max_position_embeddings)


def plan_id(spec: Spec, stats: DataStats) -> str:
    blob = json.dumps({"spec": spec.model_dump(mode="json"), "data": stats.fingerprint}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def select_config(spec: Spec) -> tuple[CustomizationConfig | None, str, list[Finding]]:
    """The customization config: the one named in model.config, else the inventory's GPU class."""
    model, gpu = spec.model, spec.inventory.gpu
    valid = ", ".join(model.urns)
    matching = [c for c in model.configs if c.parsed.gpu_class in gpu.classes]
    fallback = matching[0] if matching else model.configs[0]
    fallback_source = "matched" if matching else "foreign"
    if model.config is not None:
        try:
            urn = URN.parse(model.config)
        except ValueError as exc:
            return fallback, fallback_source, [Finding(
                severity="error", code="config-urn-invalid", path="model.config", message=str(exc),
                fix=f"use one of: {valid}")]
        if urn.version is None:
            return fallback, fallback_source, [Finding(
                severity="error", code="config-urn-version", path="model.config",
                message=f"config URN {model.config!r} carries no version; a run must pin one",
                fix=f"use a versioned URN: {valid}")]
        found = model.find_config(model.config)
        if found is None:
            return fallback, fallback_source, [Finding(
                severity="error", code="config-urn-unknown", path="model.config",
                message=f"{model.config!r} is not a customization config of {model.name}",
                fix=f"use one of: {valid}")]
        return found, "explicit", []
    if matching:
        return matching[0], "matched", []
    return model.configs[0], "foreign", [Finding(
        severity="info", code="config-none-for-gpu", path="model.config",
        message=f"{model.name} has no customization config for {gpu.display_name} (classes "
        f"{', '.join(gpu.classes)}); the layout is searched, and {model.configs[0].urn} gives the sequence "
        "length and template",
        fix="add a config for this GPU class to the model's catalog entry to pin published training options")]


def needs_sft_stage(method: TrainMethod | None, spec: Spec) -> bool:
    """An SFT stage runs first: the base of a DPO stage, or a GRPO cold start."""
    if isinstance(method, Dpo):
        return method.sft_base is None and spec.knowledge.dpo_needs_sft_base
    return isinstance(method, Grpo) and method.cold_start_sft


def pipeline_for(kind: str, method: TrainMethod | None, spec: Spec) -> tuple[str, ...]:
    if needs_sft_stage(method, spec):
        return ("sft", kind)
    return (kind,) if kind in TRAIN_KINDS else ()


def train_stage(name: str, kind: str, spec: Spec, stats: DataStats, config: CustomizationConfig | None,
                prompt: PromptFormat, *, overrides: bool = True) -> TrainStage:
    """A training stage's recipe and sequence length (layout still to come)."""
    r = resolve.recipe(kind, spec, config, overrides=overrides)
    seq = resolve.seq_length(spec, stats, r.method, config, prompt,
                             pinned=r.sources.get("max_seq_length") == "override")
    return TrainStage(name=name, kind=kind, recipe=r, seq=seq)


def layout_for(draft: Draft, method: TrainMethod, config: CustomizationConfig | None, seq: int) -> tuple[
        layout_mod.Result, layout_mod.Candidate | None, object | None]:
    spec = draft.spec
    ctx = layout_mod.Context(arch=spec.model.architecture, method=method, inventory=spec.inventory,
                             stats=draft.stats, prior=spec.knowledge.estimator, precision=draft.precision, seq=seq,
                             headroom=spec.knowledge.lints.memory_headroom, engine=spec.knowledge.engine)
    option = config.option(method.training_type, method.finetuning_type) \
        if config is not None and draft.config_source != "foreign" else None
    request = spec.layout
    if method.micro_batch_size and request.micro_batch is None:  # the method's micro batch pins it too
        request = request.model_copy(update={"micro_batch": method.micro_batch_size})
    searched = layout_mod.search(ctx, request)
    shape_pinned = any(v is not None for v in (request.nodes, request.gpus_per_node, request.tensor_parallel,
                                                 request.pipeline_parallel))
    if shape_pinned:  # the user's pins win; the search fills in the rest
        if searched.chosen is not None:
            return layout_mod.Result(chosen=searched.chosen, source="pinned", alternatives=searched.alternatives,
                                     best_search=searched.chosen), searched.chosen, None
        if searched.alternatives:  # nothing fits under the pins: report the smallest
            cand = searched.alternatives[0][0]
            return layout_mod.Result(chosen=cand, source="pinned"), cand, None
        cand = layout_mod.from_request(ctx, request)  # no valid combination: the checks say why
        return layout_mod.Result(chosen=cand, source="pinned"), cand, None
    if option is not None:
        option = _meet_deadline(ctx, option, request, spec.goal.deadline_hours)
        cand = layout_mod.from_option(ctx, option, request)
        return layout_mod.Result(chosen=cand, source="pinned", best_search=searched.chosen,
                                 alternatives=searched.alternatives), cand, option
    if searched.chosen is None:
        return searched, searched.alternatives[0][0] if searched.alternatives else None, None
    return searched, searched.chosen, None


def _meet_deadline(ctx: layout_mod.Context, option, request, deadline: float | None):
    """Replicate a pinned option data-parallel (whole nodes first) until the expected wall time
    fits the goal's deadline; TP and PP stay as published. The option itself when it already fits."""
    if deadline is None:
        return option
    inv = ctx.inventory
    current = option
    while layout_mod.from_option(ctx, current, request).time.wall_hours > deadline:
        if current.num_gpus == inv.gpus_per_node and current.num_nodes * 2 <= inv.nodes:
            nxt = current.model_copy(update={"num_nodes": current.num_nodes * 2})
        elif current.num_nodes == 1 and current.num_gpus * 2 <= inv.gpus_per_node:
            nxt = current.model_copy(update={"num_gpus": current.num_gpus * 2})
        else:
            return current  # the inventory is exhausted: the deadline check reports it
        dp = nxt.num_gpus * nxt.num_nodes // (nxt.tensor_parallel_size * nxt.pipeline_parallel_size)
        if ctx.method.batch_size % (dp * nxt.micro_batch_size):
            return current
        current = nxt
    return current


def resolve_launcher(spec: Spec) -> str:
    """`auto`: slurm when the inventory has a scheduler, local bash on a CPU inventory, else torchrun."""
    kind = spec.launcher.kind
    if kind != "auto":
        return kind
    if spec.inventory.scheduler == "slurm":
        return "slurm"
    return "local" if spec.inventory.gpu.name == "cpu" else "torchrun"


def assess_rung(spec: Spec, stats: DataStats, config: CustomizationConfig | None, config_source: str):
    """For the ladder: can this rung be trained on the inventory, and at what cost (cached)."""
    prompt = resolve.prompt_format(spec, config)

    @cache
    def assess(kind: str) -> ladder_mod.Assessment:
        if kind not in TRAIN_KINDS:
            return ladder_mod.Assessment(fits=True, gpus=0, gpu_hours=0.0)
        stage = train_stage("train", kind, spec, stats, config, prompt)
        method = stage.recipe.method
        draft = Draft(spec=spec, stats=stats, config=config, config_source=config_source, config_findings=[],
                      method_kind=kind, train=method, pipeline=(kind,), ladder=None)  # type: ignore[arg-type]
        result, cand, _ = layout_for(draft, method, config, stage.seq)
        if cand is None:
            return ladder_mod.Assessment(fits=False, gpus=0, gpu_hours=None, detail="no layout")
        if not cand.fits:
            smallest = result.best_search or cand
            return ladder_mod.Assessment(
                fits=False, gpus=cand.shape.gpus, gpu_hours=cand.gpu_hours,
                detail=f"{smallest.memory.total / GB:.0f} GB per GPU > {cand.capacity / GB:.0f} GB usable")
        hours = cand.gpu_hours
        if pipeline_for(kind, method, spec)[0] == "sft" and kind != "sft":
            hours += assess("sft").gpu_hours or 0.0
        return ladder_mod.Assessment(fits=True, gpus=cand.shape.gpus, gpu_hours=hours)

    return assess


def plan(spec: Spec, stats: DataStats) -> Plan:
    """The plan for a validated spec and probed data. Pure and deterministic."""
    from planner.checks import run_checks

    config, config_source, config_findings = select_config(spec)
    assess = assess_rung(spec, stats, config, config_source)
    climbed = ladder_mod.climb(ladder_mod.Inputs(
        goal=spec.goal, data_format=spec.data.format, stats=stats, knowledge=spec.knowledge, assess=assess,
        inventory_name=spec.inventory.name))
    requested = spec.method.kind
    kind = climbed.choice if requested == "auto" else requested
    prompt = resolve.prompt_format(spec, config)
    stages: list[TrainStage] = []
    if kind in TRAIN_KINDS:
        main = train_stage("train", kind, spec, stats, config, prompt)
        if pipeline_for(kind, main.recipe.method, spec)[0] == "sft" and kind != "sft":
            stages.append(train_stage("train_sft", "sft", spec, stats, config, prompt, overrides=False))
        stages.append(main)
    train = stages[-1].recipe.method if stages else None
    pipeline = tuple(s.kind for s in stages)
    draft = Draft(spec=spec, stats=stats, config=config, config_source=config_source,
                  config_findings=config_findings, method_kind=kind, train=train, pipeline=pipeline, ladder=climbed,
                  prompt=prompt if stages or kind in ("prompting", "rag") else None, stages=tuple(stages))
    for stage in stages:
        _lay_out(draft, stage)
    layout = Layout(source="none", precision=draft.precision)
    estimate = Estimate(assumptions=("no training: evaluation only",)) if train is None else Estimate()
    main_stage = draft.main
    if main_stage is not None:
        draft.layout_result, draft.candidate = main_stage.layout_result, main_stage.candidate
        draft.option = main_stage.option
        if main_stage.layout is not None and main_stage.estimate is not None:
            layout = main_stage.layout
            estimate = _pipeline_estimate(draft)
            draft.gpu_hours, draft.wall_hours = estimate.gpu_hours, estimate.wall_hours
    findings = tuple(run_checks(draft, layout))
    pid = plan_id(spec, stats)
    artifacts = _artifacts(spec, kind, pid, train)
    built = build_stages(spec, pipeline, layout, artifacts, _stage_extras(draft),
                         train_hours=draft.candidate.time.wall_high if draft.candidate else None)
    rungs = climbed.rungs if requested == "auto" else _explicit_rungs(climbed, requested)
    decision = Decision(
        method=kind, requested=requested, rungs=rungs, pipeline=pipeline,
        config_urn=config.urn if config else None, launcher=resolve_launcher(spec),
        training_option=draft.option.model_dump() if draft.option is not None else None,  # type: ignore[union-attr]
        next_step=climbed.next_step if kind == climbed.choice else "", serving=serving(spec, train),
    )
    return Plan(
        id=pid, name=f"{spec.goal.name}-{pid}", spec=spec, data_stats=stats, decision=decision, layout=layout,
        estimate=estimate, findings=findings, feasible=not any(f.severity == "error" for f in findings),
        stages=built, artifacts=artifacts,
    )


def _lay_out(draft: Draft, stage: TrainStage) -> None:
    """Search the stage's layout, estimate it, and fill in the values the layout decides."""
    result, cand, option = layout_for(draft, stage.recipe.method, draft.config, stage.seq)
    stage.layout_result, stage.candidate, stage.option = result, cand, option
    if cand is None:
        return
    stage.layout = _layout(cand, result.source, draft.precision)
    stage.estimate = _estimate(draft, cand, stage.recipe.method, result)
    stage.final = resolve.finalize(stage.recipe, stage.layout, stage.seq, replay_path(draft.spec, stage.recipe.method))


def _stage_extras(draft: Draft) -> dict[str, dict]:
    """What each stage executes, resolved: the data files, the prompt format, a training stage's method, layout
    and estimate, an evaluation's strategy."""
    spec, stats, main = draft.spec, draft.stats, draft.main
    data = stage_data(spec, stats, seed=main.method.seed if main else 42)
    shared = {"data": data, "prompt": draft.prompt}
    evaluation = _evaluation(draft)
    out: dict[str, dict] = {
        "validate_data": shared,
        "baseline_eval": {**shared, "evaluation": evaluation.model_copy(update={"strategy": "template", "few_shot": 0,
                                                                                "system_prompt": None, "top_k": 0})},
        "eval": {**shared, "evaluation": evaluation},
    }
    for stage in draft.stages:
        if stage.final is None:
            continue
        use = "as_is" if stage is main else "chosen" if spec.data.format == "preference" else "answer"
        out[stage.name] = {
            "method": stage.final.method, "method_sources": stage.final.sources, "layout": stage.layout,
            "estimate": stage.estimate, "prompt": draft.prompt,
            "data": data.model_copy(update={"use": use}) if data is not None else None}
    return out


def stage_data(spec: Spec, stats: DataStats, seed: int) -> StageData | None:
    """The data files as planned (absolute paths, sizes, hashes) and the hold-out rule; None for remote data."""
    if stats.root is None:
        return None
    root = stats.root
    files = [f.model_copy(update={"path": f"{root}/{f.path}"}) for split in (stats.training, stats.validation)
             if split is not None for f in split.digests]
    return StageData(format=spec.data.format, root=root, files=tuple(files),
                     holdout_fraction=spec.knowledge.lints.holdout_fraction, holdout_seed=seed)


def _evaluation(draft: Draft) -> Evaluation:
    """How the tuned model (or the prompt, or the retrieval) is evaluated, resolved from the method and eval."""
    spec, kind = draft.spec, draft.method_kind
    ev = spec.eval
    bench = ev.general_benchmark
    bench_path = None
    if bench.startswith("builtin:"):
        from planner.paths import samples_dir

        bench_path = str(samples_dir() / bench.removeprefix("builtin:") / "benchmark.jsonl")
    fields: dict = {"strategy": "template"}
    if kind == "prompting":
        m = spec.method if isinstance(spec.method, Prompting) else Prompting()
        fields = {"strategy": "few_shot" if m.few_shot else "zero_shot", "few_shot": m.few_shot,
                  "system_prompt": m.system_prompt}
    elif kind == "rag":
        r = spec.method if isinstance(spec.method, Rag) else Rag()
        fields = {"strategy": "rag", "top_k": r.top_k, "chunk_tokens": r.chunk_tokens, "retriever": r.retriever}
    sft_base = getattr(draft.train, "sft_base", None)
    return Evaluation(**fields, metric=spec.goal.metric, max_examples=ev.max_examples,
                      max_new_tokens=ev.max_new_tokens, general_benchmark=bench, general_benchmark_path=bench_path,
                      sft_base=sft_base)


def replay_path(spec: Spec, method: TrainMethod) -> str | None:
    """The absolute file a replay block reads (builtin:<name> is the shipped conf/samples/<name>/corpus.txt)."""
    if method.replay is None:
        return None
    if method.replay.is_builtin:
        from planner.paths import samples_dir

        return str(samples_dir() / method.replay.data.removeprefix("builtin:") / "corpus.txt")
    return method.replay.data


def serving(spec: Spec, train: TrainMethod | None) -> ServingPlan:
    """How the result is served: a LoRA adapter hot-swaps, all weights need a deployment of their own."""
    if train is None:
        return ServingPlan(kind="none", reason="nothing is trained: the base model keeps serving")
    if train.finetuning_type == "lora":
        return ServingPlan(kind="hot_swap", reason="a LoRA adapter hot-swaps into a running multi-LoRA server")
    return ServingPlan(kind="new_deployment", reason="all weights change: the model needs its own deployment")


def _explicit_rungs(climbed: ladder_mod.LadderResult, requested: str):
    from schemas.plan import Rung

    out = []
    for rung in climbed.rungs:
        if rung.method == requested:
            reason = f"requested with method={requested}"
            if rung.verdict != "chosen":
                reason += f"; the ladder says: {rung.reason}"
            out.append(Rung(method=rung.method, verdict="chosen", reason=reason))
        elif rung.verdict == "chosen":
            out.append(Rung(method=rung.method, verdict="recommended",
                            reason=f"method=auto would choose this: {rung.reason}"))
        else:
            out.append(rung)
    return tuple(out)


def _layout(cand: layout_mod.Candidate, source: str, precision: str) -> Layout:
    s = cand.shape
    dp = max(1, s.dp)
    return Layout(
        nodes=s.nodes, gpus_per_node=s.gpus_per_node, tensor_parallel=s.tp, pipeline_parallel=s.pp,
        data_parallel=dp, micro_batch=s.micro_batch, grad_accum=max(1, s.global_batch // (s.micro_batch * dp)),
        global_batch=s.global_batch, sharding=s.sharding, activation_checkpointing=s.checkpointing,
        precision=precision, seq_length=s.seq, source=source,  # type: ignore[arg-type]
    )


def _estimate(draft: Draft, cand: layout_mod.Candidate, train: TrainMethod,
              result: layout_mod.Result | None) -> Estimate:
    """One training stage's memory, time and cost on its layout."""
    spec = draft.spec
    m = cand.memory
    mem = MemoryBreakdown(weights=m.weights, grads=m.grads, optimizer=m.optimizer, activations=m.activations,
                          logits=m.logits, adapters=m.adapters, reference_model=m.reference_model,
                          kv_cache=m.kv_cache, overhead=m.overhead, total=m.total,
                          capacity=int(spec.inventory.gpu.memory_gb * GB))
    t = cand.time
    hours, low, high = t.gpu_hours(cand.shape.gpus)
    prior = spec.knowledge.estimator
    assumptions = [
        f"MFU {prior.mfu:.0%} (range {prior.mfu_low:.0%}-{prior.mfu_high:.0%}); fixed costs: load "
        f"{prior.load_minutes:g} min, eval {prior.eval_fraction:.0%} of training, checkpoint writes",
        f"sequence length {cand.shape.seq} tokens (the longest record, "
        f"{'declared' if draft.stats.source == 'remote' else 'chars/4'} x {prior.seq_margin:g} + the prompt format, "
        "capped by the config)",
    ]
    if train.replay is not None:
        assumptions.append(f"replay {train.replay.ratio:g}x from {train.replay.data}: documents counted at the task's "
                           "p95 length in time and memory (an overestimate for short lines)")
    price = spec.inventory.price_per_gpu_hour
    alternatives = tuple(
        Alternative(layout=alt.describe(), gpus=alt.shape.gpus, memory_per_gpu_bytes=alt.memory.total,
                    gpu_hours=round(alt.gpu_hours, 4), why=why)
        for alt, why in (result.alternatives if result else [])
        if alt is not cand and alt.fits)
    return Estimate(
        memory_per_gpu_bytes=mem, trainable_params=est.trainable_params(spec.model.architecture, train),
        tokens=t.tokens, steps=t.steps, flops=t.flops, gpu_hours=round(hours, 4),
        gpu_hours_range=(round(low, 4), round(high, 4)), wall_hours=round(t.wall_hours, 4),
        wall_hours_range=(round(t.wall_low, 4), round(t.wall_high, 4)),
        cost_usd=round(hours * price, 2) if price is not None else None, alternatives=alternatives,
        assumptions=tuple(assumptions),
    )


def _pipeline_estimate(draft: Draft) -> Estimate:
    """The plan's estimate: the last stage's memory and layout alternatives, GPU-hours, wall time and cost of the
    whole pipeline (each stage on its own layout)."""
    main = draft.main
    assert main is not None and main.estimate is not None and main.candidate is not None
    alternatives = tuple(
        Alternative(layout=alt.describe(), gpus=alt.shape.gpus, memory_per_gpu_bytes=alt.memory.total,
                    gpu_hours=round(alt.gpu_hours, 4), why=why)
        for alt, why in (main.layout_result.alternatives if main.layout_result else [])
        if alt is not main.candidate and alt.fits)
    hours = low = high = wall = wall_lo = wall_hi = 0.0
    assumptions = list(main.estimate.assumptions)
    for stage in draft.stages:
        if stage.candidate is None:
            continue
        t = stage.candidate.time
        h, lo, hi = t.gpu_hours(stage.candidate.shape.gpus)
        hours, low, high = hours + h, low + lo, high + hi
        wall, wall_lo, wall_hi = wall + t.wall_hours, wall_lo + t.wall_low, wall_hi + t.wall_high
        if stage is not main:
            assumptions.append("includes the SFT stage that builds the DPO base, on the same data's chosen answers"
                               if main.kind == "dpo" else
                               "includes the cold-start SFT stage on the same prompts and reference answers")
    price = draft.spec.inventory.price_per_gpu_hour
    return main.estimate.model_copy(update={
        "gpu_hours": round(hours, 4), "gpu_hours_range": (round(low, 4), round(high, 4)),
        "wall_hours": round(wall, 4), "wall_hours_range": (round(wall_lo, 4), round(wall_hi, 4)),
        "cost_usd": round(hours * price, 2) if price is not None else None, "alternatives": alternatives,
        "assumptions": tuple(assumptions)})


def _artifacts(spec: Spec, kind: str, pid: str, train: TrainMethod | None) -> Artifacts:
    name = f"{spec.goal.namespace}/{spec.model.name}-{spec.data.name}-{kind}@{pid}"
    lora = train is not None and train.finetuning_type == "lora"
    needs_base = needs_sft_stage(train, spec)
    return Artifacts(
        output_model=name,
        adapter_dir="run/train/adapter" if lora else None,
        model_dir="run/train/model" if train is not None and not lora else None,
        sft_base_dir="run/train_sft/model" if needs_base else None,
        published_dir=f"run/publish/{name.replace('/', '__').replace('@', '--')}" if train is not None else None,
    )


__all__ = ["Draft", "TrainStage", "plan", "plan_id", "select_config"]
