"""plan(spec, stats) -> Plan: pure. No I/O, no clock, no environment, no torch.

Order: pick the customization config, climb the ladder, lay out and estimate the training
stages (planner.stages), freeze the draft (planner.draft), run every feasibility check
(planner.checks), build the stage DAG, hash the inputs into the plan id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache

from planner import derive, resolve, tracking
from planner import estimator as est
from planner import ladder as ladder_mod
from planner.checks import run_checks
from planner.dag import build_stages
from planner.draft import Draft, Selection, TrainStage, needs_sft_stage, precision, resolve_launcher
from planner.host import Host
from planner.mixture import holds_out
from planner.stages import lay_out, layout_for, pipeline_estimate, train_stage
from schemas.data import DataFile, DataStats, HubSource, Mixture, PartData
from schemas.method import TRAIN_KINDS, Prompting, Rag, TrainMethod
from schemas.model import URN
from schemas.plan import (
    Artifacts,
    Decision,
    Estimate,
    Evaluation,
    Layout,
    Plan,
    PromptFormat,
    Rung,
    ServingPlan,
    StageData,
)
from schemas.records import FORMATS, shape
from schemas.spec import Spec

GB = est.GB


def plan_id(spec: Spec, stats: DataStats) -> str:
    # tracking is left out: it observes the run and changes nothing in it, so turning it on re-plans the same
    # bundle (its completed stages stay completed) instead of starting a new one
    # the tokenizer that counted the data sets its sequence length and memory: another version is another plan
    tokens = {"tokenizer": stats.tokenizer} if stats.tokenizer else {}
    blob = json.dumps(
        {"spec": spec.model_dump(mode="json", exclude={"tracking"}), "data": stats.fingerprint, **tokens},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def select_config(spec: Spec) -> Selection:
    """The customization config: the one named in model.config, else the inventory's GPU class. A model.config
    that names no usable config falls back to the GPU class's and records why (planner.checks.config says it).
    A model without configs (read from its config.json) gets one derived for this inventory (planner.derive)."""
    model, gpu = spec.model, spec.inventory.gpu
    if not model.configs:
        return Selection(derive.config(spec), "derived")
    matching = [c for c in model.configs if c.parsed.gpu_class in gpu.classes]
    fallback = matching[0] if matching else model.configs[0]
    fallback_source = "matched" if matching else "foreign"
    if model.config is None:
        return Selection(fallback, fallback_source)
    try:
        urn = URN.parse(model.config)
    except ValueError as exc:
        return Selection(fallback, fallback_source, problem="config-urn-invalid", detail=str(exc))
    if urn.version is None:
        return Selection(fallback, fallback_source, problem="config-urn-version")
    found = model.find_config(model.config)
    if found is None:
        return Selection(fallback, fallback_source, problem="config-urn-unknown")
    return Selection(found, "explicit")


def assess_rung(spec: Spec, stats: DataStats, selection: Selection) -> Callable[[str], ladder_mod.Assessment]:
    """For the ladder: can this rung be trained on the inventory, and at what cost (cached)."""
    config = selection.config
    prompt = resolve.prompt_format(spec, config)

    @cache
    def assess(kind: str) -> ladder_mod.Assessment:
        if kind not in TRAIN_KINDS:
            return ladder_mod.Assessment(fits=True, gpus=0, gpu_hours=0.0)
        stage = train_stage("train", kind, spec, stats, config, prompt)
        method = stage.recipe.method
        result, cand, _ = layout_for(spec, stats, selection, method, stage.seq, stage.widest)
        if cand is None:
            return ladder_mod.Assessment(fits=False, gpus=0, gpu_hours=None, detail="no layout")
        if not cand.fits:
            smallest = result.best_search or cand
            return ladder_mod.Assessment(
                fits=False,
                gpus=cand.shape.gpus,
                gpu_hours=cand.gpu_hours,
                detail=f"{smallest.memory.total / GB:.0f} GB per GPU > {cand.capacity / GB:.0f} GB usable",
            )
        hours = cand.gpu_hours
        if needs_sft_stage(method, spec):
            hours += assess("sft").gpu_hours or 0.0
        return ladder_mod.Assessment(fits=True, gpus=cand.shape.gpus, gpu_hours=hours)

    return assess


def train_stages(
    kind: str, spec: Spec, stats: DataStats, selection: Selection, prompt: PromptFormat
) -> tuple[TrainStage, ...]:
    """The training stages of a `kind` pipeline, each laid out and estimated: an SFT stage first where the method
    needs one (the base of DPO, a GRPO cold start), then the method's own."""
    if kind not in TRAIN_KINDS:
        return ()
    config = selection.config
    main = train_stage("train", kind, spec, stats, config, prompt)
    stages = [main]
    if needs_sft_stage(main.recipe.method, spec):
        stages.insert(0, train_stage("train_sft", "sft", spec, stats, config, prompt, overrides=False))
    return tuple(lay_out(spec, stats, selection, stage) for stage in stages)


def plan(spec: Spec, stats: DataStats, host: Host | None = None) -> Plan:
    """The plan for a validated spec and probed data. Pure and deterministic. `host` (planner.host.probe at the
    edge) only adds warnings about the planning machine; it is not part of the plan id."""
    selection = select_config(spec)
    config = selection.config
    climbed = ladder_mod.climb(
        ladder_mod.Inputs(
            goal=spec.goal,
            data_format=shape(spec.data.format),  # Alpaca is prompt/completion, ShareGPT messages
            stats=stats,
            knowledge=spec.knowledge,
            assess=assess_rung(spec, stats, selection),
            inventory_name=spec.inventory.name,
        )
    )
    requested = spec.method.kind
    kind = climbed.choice if requested == "auto" else requested
    prompt = resolve.prompt_format(spec, config)
    stages = train_stages(kind, spec, stats, selection, prompt)
    main = stages[-1] if stages else None
    train = main.recipe.method if main else None
    pipeline = tuple(s.kind for s in stages)
    layout = Layout(source="none", precision=precision(spec, config), attention_implementation=resolve.attention(spec))
    estimate = Estimate(assumptions=("no training: evaluation only",)) if train is None else Estimate()
    gpu_hours = wall_hours = None
    if main is not None and main.layout is not None:  # laid out, so estimated too
        layout, estimate = main.layout, pipeline_estimate(spec, stages)
        gpu_hours, wall_hours = estimate.gpu_hours, estimate.wall_hours
    draft = Draft(
        spec=spec,
        stats=stats,
        selection=selection,
        method_kind=kind,
        train=train,
        pipeline=pipeline,
        ladder=climbed,
        prompt=prompt if stages or kind in ("prompting", "rag") else None,
        stages=stages,
        gpu_hours=gpu_hours,
        wall_hours=wall_hours,
        host=host or Host(),
    )
    findings = tuple(run_checks(draft, layout))
    pid = plan_id(spec, stats)
    artifacts = _artifacts(spec, kind, pid, train)
    built = build_stages(
        spec,
        pipeline,
        layout,
        artifacts,
        _stage_extras(draft),
        train_hours=draft.candidate.time.wall_high if draft.candidate else None,
    )
    rungs = climbed.rungs if requested == "auto" else _explicit_rungs(climbed, requested)
    decision = Decision(
        method=kind,
        requested=requested,
        rungs=rungs,
        pipeline=pipeline,
        config_urn=config.urn if config else None,
        launcher=resolve_launcher(spec),
        training_option=draft.option.model_dump() if draft.option is not None else None,
        next_step=climbed.next_step if kind == climbed.choice else "",
        serving=serving(spec, train),
    )
    return Plan(
        id=pid,
        name=f"{spec.goal.name}-{pid}",
        spec=spec,
        data_stats=stats,
        decision=decision,
        layout=layout,
        estimate=estimate,
        findings=findings,
        feasible=not any(f.severity == "error" for f in findings),
        stages=built,
        artifacts=artifacts,
        tracking=tracking.resolve(spec.tracking, name=f"{spec.goal.name}-{pid}", goal=spec.goal.name),
    )


def _stage_extras(draft: Draft) -> dict[str, dict]:
    """What each stage executes, resolved: the data files, the prompt format, a training stage's method, layout
    and estimate, an evaluation's strategy."""
    spec, stats, main = draft.spec, draft.stats, draft.main
    data = stage_data(spec, stats, seed=main.method.seed if main else 42)
    shared = {"data": data, "prompt": draft.prompt}
    evaluation = _evaluation(draft)
    out: dict[str, dict] = {
        "validate_data": shared,
        "baseline_eval": {
            **shared,
            "evaluation": evaluation.model_copy(
                update={"strategy": "template", "few_shot": 0, "system_prompt": None, "top_k": 0}
            ),
        },
        "eval": {**shared, "evaluation": evaluation},
    }
    for stage in draft.stages:
        if stage.final is None:
            continue
        use = "as_is" if stage is main else FORMATS[spec.data.format].base_use
        out[stage.name] = {
            "method": stage.final.method,
            "method_sources": stage.final.sources,
            "layout": stage.layout,
            "estimate": stage.estimate,
            "prompt": draft.prompt,
            "data": data.model_copy(update={"use": use}) if data is not None else None,
        }
    return out


def stage_data(spec: Spec, stats: DataStats, seed: int) -> StageData | None:
    """The data as planned: the files (absolute paths, sizes, hashes), a Hub dataset (its pinned revision), or a
    mixture (each part and the records drawn from it), and the hold-out rule; None for other remote data."""
    common = {
        "format": spec.data.format,
        "holdout_fraction": spec.knowledge.lints.holdout_fraction,
        "holdout_seed": seed,
    }
    if stats.mixture:
        parts = tuple(
            PartData(
                key=p.key,
                format=p.format,
                root=p.stats.root,
                files=_files(p.stats),
                hub=_hub(p.stats),
                holdout=holds_out(p.stats),
                pool=p.pool,
                drawn=p.drawn,
            )
            for p in stats.mixture
        )
        mixture = Mixture(stopping_strategy=spec.data.stopping_strategy, seed=seed, parts=parts)
        return StageData(**common, mixture=mixture)
    if stats.hub is not None:
        return StageData(**common, hub=_hub(stats))
    if stats.root is None:
        return None
    return StageData(**common, root=stats.root, files=_files(stats))


def _files(stats: DataStats) -> tuple[DataFile, ...]:
    """The probed data files with absolute paths."""
    return tuple(
        f.model_copy(update={"path": f"{stats.root}/{f.path}"})
        for split in (stats.training, stats.validation)
        if split is not None and stats.root is not None
        for f in split.digests
    )


def _hub(stats: DataStats) -> HubSource | None:
    """A Hub dataset as the runtime loads it: the commit planned (or the revision pinned), the row count measured."""
    h = stats.hub
    if h is None:
        return None
    return HubSource(
        repo=h.repo,
        revision=h.revision,
        subset=h.subset,
        training_split=h.training_split,
        validation_split=h.validation_split,
        training_rows=h.training_rows,
    )


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
        fields = {
            "strategy": "few_shot" if m.few_shot else "zero_shot",
            "few_shot": m.few_shot,
            "system_prompt": m.system_prompt,
        }
    elif kind == "rag":
        r = spec.method if isinstance(spec.method, Rag) else Rag()
        fields = {"strategy": "rag", "top_k": r.top_k, "chunk_tokens": r.chunk_tokens, "retriever": r.retriever}
    sft_base = getattr(draft.train, "sft_base", None)
    return Evaluation(
        **fields,
        metric=spec.goal.metric,
        max_examples=ev.max_examples,
        max_new_tokens=ev.max_new_tokens,
        general_benchmark=bench,
        general_benchmark_path=bench_path,
        sft_base=sft_base,
    )


def serving(spec: Spec, train: TrainMethod | None) -> ServingPlan:
    """How the result is served: a LoRA adapter hot-swaps, all weights need a deployment of their own."""
    if train is None:
        return ServingPlan(kind="none", reason="nothing is trained: the base model keeps serving")
    if train.finetuning_type == "lora":
        return ServingPlan(kind="hot_swap", reason="a LoRA adapter hot-swaps into a running multi-LoRA server")
    return ServingPlan(kind="new_deployment", reason="all weights change: the model needs its own deployment")


def _explicit_rungs(climbed: ladder_mod.LadderResult, requested: str) -> tuple[Rung, ...]:
    out = []
    for rung in climbed.rungs:
        if rung.method == requested:
            reason = f"requested with method={requested}"
            if rung.verdict != "chosen":
                reason += f"; the ladder says: {rung.reason}"
            out.append(Rung(method=rung.method, verdict="chosen", reason=reason))
        elif rung.verdict == "chosen":
            out.append(
                Rung(method=rung.method, verdict="recommended", reason=f"method=auto would choose this: {rung.reason}")
            )
        else:
            out.append(rung)
    return tuple(out)


def _artifacts(spec: Spec, kind: str, pid: str, train: TrainMethod | None) -> Artifacts:
    name = spec.goal.output_model or f"{spec.goal.namespace}/{spec.model.name}-{spec.data.name}-{kind}@{pid}"
    lora = train is not None and train.finetuning_type == "lora"
    needs_base = needs_sft_stage(train, spec)
    return Artifacts(
        output_model=name,
        adapter_dir="run/train/adapter" if lora else None,
        model_dir="run/train/model" if train is not None and not lora else None,
        sft_base_dir="run/train_sft/model" if needs_base else None,
        published_dir=f"run/publish/{name.replace('/', '__').replace('@', '--')}" if train is not None else None,
    )


__all__ = ["plan", "plan_id", "select_config"]
