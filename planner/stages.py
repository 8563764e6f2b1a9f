"""The training stages of a plan, each planned on its own: recipe and sequence length, then the layout
(pinned by the user, published by the config, or searched), the estimate on that layout, and the
values the trainer reads. Then the pipeline's estimate over all stages. Pure.
"""

from __future__ import annotations

import dataclasses

from planner import estimator as est
from planner import layout as layout_mod
from planner import resolve
from planner import walltime as wt
from planner.draft import Selection, TrainStage, precision
from planner.methods import METHODS
from planner.tokens import TokenCounter, token_counter
from schemas.calibration import DeviceCalibration
from schemas.data import DataStats
from schemas.layout import LayoutRequest
from schemas.method import TrainMethod
from schemas.model import CustomizationConfig, TrainingOption
from schemas.plan import Alternative, Estimate, Layout, MemoryBreakdown, PromptFormat
from schemas.spec import Spec

GB = est.GB
Laid = tuple[layout_mod.Result, layout_mod.Candidate | None, TrainingOption | None]


def train_stage(
    name: str,
    kind: str,
    spec: Spec,
    stats: DataStats,
    config: CustomizationConfig | None,
    prompt: PromptFormat,
    *,
    overrides: bool = True,
) -> TrainStage:
    """A training stage's recipe and sequence length (layout still to come)."""
    r = resolve.recipe(kind, spec, config, overrides=overrides)
    seq = resolve.seq_length(
        spec, stats, r.method, config, prompt, pinned=r.sources.get("max_seq_length") == "override"
    )
    widest = resolve.widest_batch(spec, stats, r.method, prompt, seq)
    return TrainStage(name=name, kind=kind, recipe=r, seq=seq, widest=widest)


def lay_out(spec: Spec, stats: DataStats, selection: Selection, stage: TrainStage) -> TrainStage:
    """The stage with its layout searched, estimated, and the values the layout decides filled in."""
    result, cand, option = layout_for(spec, stats, selection, stage.recipe.method, stage.seq, stage.widest)
    stage = dataclasses.replace(stage, layout_result=result, candidate=cand, option=option)
    if cand is None:
        return stage
    layout = layout_of(cand, result.source, precision(spec, selection.config))
    return dataclasses.replace(
        stage,
        layout=layout,
        estimate=stage_estimate(spec, stats, cand, stage.recipe.method, result),
        final=resolve.finalize(stage.recipe, layout, stage.seq, replay_path(spec, stage.recipe.method)),
    )


def layout_for(
    spec: Spec, stats: DataStats, selection: Selection, method: TrainMethod, seq: int, widest: int = 0
) -> Laid:
    """The layout result, the candidate the stage runs on (None: nothing to evaluate), and the config's
    published option when the stage follows it."""
    config = selection.config
    ctx = layout_mod.Context(
        arch=spec.model.architecture,
        method=method,
        inventory=spec.inventory,
        stats=stats,
        prior=wt.calibrated_prior(spec.knowledge.estimator, device_calibration(spec)),
        precision=precision(spec, config),
        seq=seq,
        headroom=spec.knowledge.lints.memory_headroom,
        engine=spec.knowledge.engine,
        calibration=device_calibration(spec),
        attention=resolve.attention(spec),
        widest=widest,
        replay_tokens=resolve.replay_tokens(replay_path(spec, method), token_counter(spec)),
    )
    option = (
        config.option(method.training_type, method.finetuning_type)
        if config is not None and selection.source != "foreign"
        else None
    )
    request = spec.layout
    if method.micro_batch_size and request.micro_batch is None:  # the method's micro batch pins it too
        request = request.model_copy(update={"micro_batch": method.micro_batch_size})
    searched = layout_mod.search(ctx, request)
    shape_pinned = any(
        v is not None
        for v in (request.nodes, request.gpus_per_node, request.tensor_parallel, request.pipeline_parallel)
    )
    if shape_pinned:  # the user's pins win; the search fills in the rest
        if searched.chosen is not None:
            return (
                layout_mod.Result(
                    chosen=searched.chosen,
                    source="pinned",
                    alternatives=searched.alternatives,
                    best_search=searched.chosen,
                ),
                searched.chosen,
                None,
            )
        if searched.alternatives:  # nothing fits under the pins: report the smallest
            cand = searched.alternatives[0][0]
            return layout_mod.Result(chosen=cand, source="pinned"), cand, None
        cand = layout_mod.from_request(ctx, request)  # no valid combination: the checks say why
        return layout_mod.Result(chosen=cand, source="pinned"), cand, None
    if option is not None:
        option = _meet_deadline(ctx, option, request, spec.goal.deadline_hours)
        cand = layout_mod.from_option(ctx, option, request)
        return (
            layout_mod.Result(
                chosen=cand, source="pinned", best_search=searched.chosen, alternatives=searched.alternatives
            ),
            cand,
            option,
        )
    if searched.chosen is None:
        return searched, searched.alternatives[0][0] if searched.alternatives else None, None
    return searched, searched.chosen, None


def _meet_deadline(
    ctx: layout_mod.Context, option: TrainingOption, request: LayoutRequest, deadline: float | None
) -> TrainingOption:
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


def replay_path(spec: Spec, method: TrainMethod) -> str | None:
    """The absolute file a replay block reads (builtin:<name> is the shipped conf/samples/<name>/corpus.txt)."""
    if method.replay is None:
        return None
    if method.replay.is_builtin:
        from planner.paths import samples_dir

        return str(samples_dir() / method.replay.data.removeprefix("builtin:") / "corpus.txt")
    return method.replay.data


def layout_of(cand: layout_mod.Candidate, source: str, precision: str) -> Layout:
    """The plan's Layout for a candidate."""
    s = cand.shape
    dp = max(1, s.dp)
    return Layout(
        nodes=s.nodes,
        gpus_per_node=s.gpus_per_node,
        tensor_parallel=s.tp,
        pipeline_parallel=s.pp,
        data_parallel=dp,
        micro_batch=s.micro_batch,
        grad_accum=max(1, s.global_batch // (s.micro_batch * dp)),
        global_batch=s.global_batch,
        sharding=s.sharding,
        activation_checkpointing=s.checkpointing,
        precision=precision,
        seq_length=s.seq,
        attention_implementation=s.attention,
        source=source,
    )


def _alternatives(result: layout_mod.Result | None, chosen: layout_mod.Candidate | None) -> tuple[Alternative, ...]:
    """The other layouts that fit, and why each lost."""
    return tuple(
        Alternative(
            layout=alt.describe(),
            gpus=alt.shape.gpus,
            memory_per_gpu_bytes=alt.memory.total,
            gpu_hours=round(alt.gpu_hours, 4),
            why=why,
        )
        for alt, why in (result.alternatives if result else [])
        if alt is not chosen and alt.fits
    )


def device_calibration(spec: Spec) -> DeviceCalibration | None:
    """The calibration file's entry for the inventory's GPU type, if any."""
    return spec.calibration.gpus.get(spec.inventory.gpu.name) if spec.calibration is not None else None


def calibration_note(spec: Spec) -> str:
    """Which numbers of the estimate are measured (calibrated) and which are priors."""
    cal = device_calibration(spec)
    gpu = spec.inventory.gpu.name
    if cal is None:
        where = (
            f"the calibration file has no entry for {gpu} (it has {', '.join(sorted(spec.calibration.gpus)) or 'none'})"
            if spec.calibration is not None
            else "no calibration file"
        )
        return f"memory terms and MFU are priors, not calibrated ({where}; python -m planner.calibrate measures them)"
    terms = ", ".join(f"{k} x{v:.2f}" for k, v in sorted(cal.memory_factors.items()))
    source = spec.calibration.path if spec.calibration is not None and spec.calibration.path else "calibration file"
    mfu = f"MFU {cal.mfu:.1%} measured" if cal.mfu is not None else "MFU a prior"
    return (
        f"calibrated on {gpu} ({cal.device}; {source}): memory {terms or 'priors'}"
        f", fragmentation x{cal.fragmentation:.2f}, overhead "
        + (f"{cal.overhead_bytes / GB:.2f} GB measured" if cal.overhead_bytes is not None else "a prior")
        + f"; {mfu}"
    )


def stage_estimate(
    spec: Spec, stats: DataStats, cand: layout_mod.Candidate, train: TrainMethod, result: layout_mod.Result | None
) -> Estimate:
    """One training stage's memory, time and cost on its layout."""
    m = cand.memory
    mem = MemoryBreakdown(
        weights=m.weights,
        grads=m.grads,
        optimizer=m.optimizer,
        activations=m.activations,
        logits=m.logits,
        adapters=m.adapters,
        reference_model=m.reference_model,
        kv_cache=m.kv_cache,
        overhead=m.overhead,
        backward_overlap=m.backward_overlap,
        gradient_buffers=m.gradient_buffers,
        load=m.load,
        total=m.total,
        capacity=int(spec.inventory.gpu.memory_gb * GB),
    )
    t = cand.time
    hours, low, high = t.gpu_hours(cand.shape.gpus)
    cal = device_calibration(spec)
    prior = wt.calibrated_prior(spec.knowledge.estimator, cal)
    counter = token_counter(spec)
    counted = stats.token_estimate == "tokenizer" and counter.digest == stats.tokenizer  # counted with this file
    if not counted:
        counter = TokenCounter(counter.chars_per_token, note=counter.note)
    estimate = "declared" if stats.token_estimate == "declared" else counter.describe()
    assumptions = [
        f"MFU {prior.mfu:.0%} (range {prior.mfu_low:.0%}-{prior.mfu_high:.0%}); fixed costs: load "
        f"{prior.load_minutes:g} min, eval {prior.eval_fraction:.0%} of training, checkpoint writes",
        calibration_note(spec),
        f"sequence length {cand.shape.seq} tokens (the longest record, {estimate} x {prior.seq_margin:g} + the "
        "prompt format, capped by the config)",
    ]
    widest = cand.shape.widest or cand.shape.seq
    if cand.shape.widest:
        assumptions.append(
            f"memory at the widest micro batch, {widest} tokens: each batch pads to its longest record ({estimate} "
            "+ the prompt format + BOS/EOS)"
            + ("" if counter.tokenizer else "; a tokenizer that needs more tokens raises it, up to the sequence length")
        )
    if stats.token_estimate != "declared" and (counter.tokenizer or counter.note):
        assumptions.append(counter.source())
    if train.replay is not None:
        assumptions.append(
            f"replay {train.replay.ratio:g}x from {train.replay.data}: documents counted at the task's "
            "p95 length in time; in memory, packed into rows as wide as the batch"
        )
    price = spec.inventory.price_per_gpu_hour
    return Estimate(
        memory_per_gpu_bytes=mem,
        widest_batch_tokens=widest,
        trainable_params=est.trainable_params(spec.model.architecture, train),
        tokens=t.tokens,
        tokens_per_second=round(
            wt.tokens_per_second(spec.model.architecture, train, cand.shape, spec.inventory, prior.mfu), 1
        ),
        steps=t.steps,
        flops=t.flops,
        gpu_hours=round(hours, 4),
        gpu_hours_range=(round(low, 4), round(high, 4)),
        wall_hours=round(t.wall_hours, 4),
        wall_hours_range=(round(t.wall_low, 4), round(t.wall_high, 4)),
        cost_usd=round(hours * price, 2) if price is not None else None,
        alternatives=_alternatives(result, cand),
        assumptions=tuple(assumptions),
    )


def pipeline_estimate(spec: Spec, stages: tuple[TrainStage, ...]) -> Estimate:
    """The plan's estimate: the last stage's memory and layout alternatives, GPU-hours, wall time and cost of the
    whole pipeline (each stage on its own layout)."""
    main = stages[-1]
    assert main.estimate is not None and main.candidate is not None
    hours = low = high = wall = wall_lo = wall_hi = 0.0
    assumptions = list(main.estimate.assumptions)
    for stage in stages:
        if stage.candidate is None:
            continue
        t = stage.candidate.time
        h, lo, hi = t.gpu_hours(stage.candidate.shape.gpus)
        hours, low, high = hours + h, low + lo, high + hi
        wall, wall_lo, wall_hi = wall + t.wall_hours, wall_lo + t.wall_low, wall_hi + t.wall_high
        if stage is not main:
            assumptions.append(METHODS[main.kind].base_stage_note)
    price = spec.inventory.price_per_gpu_hour
    return main.estimate.model_copy(
        update={
            "gpu_hours": round(hours, 4),
            "gpu_hours_range": (round(low, 4), round(high, 4)),
            "wall_hours": round(wall, 4),
            "wall_hours_range": (round(wall_lo, 4), round(wall_hi, 4)),
            "cost_usd": round(hours * price, 2) if price is not None else None,
            "alternatives": _alternatives(main.layout_result, main.candidate),
            "assumptions": tuple(assumptions),
        }
    )
