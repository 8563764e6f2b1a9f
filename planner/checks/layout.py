"""Checks of the parallel layout against the model, the inventory, the engine and the launcher; the deadline."""

from __future__ import annotations

from collections.abc import Iterator

from planner.checks.base import Group, finding
from planner.draft import Draft, resolve_launcher
from schemas.plan import Finding, Layout

check = Group()


@check("layout-tp-exceeds-node")
def _tp_node(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None or layout.source == "none":
        return
    if layout.tensor_parallel > layout.gpus_per_node:
        yield finding(
            "error",
            "layout-tp-exceeds-node",
            "layout.tensor_parallel",
            f"tensor parallel {layout.tensor_parallel} > {layout.gpus_per_node} GPUs per node; TP must stay "
            "within one node (it all-reduces every layer)",
            f"set layout.tensor_parallel to at most {layout.gpus_per_node} and use data parallel across nodes "
            "(layout.sharding=fsdp to shard the model)",
        )


@check("layout-product")
def _product(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None or layout.source == "none":
        return
    gpus = layout.nodes * layout.gpus_per_node
    mp = layout.tensor_parallel * layout.pipeline_parallel
    if gpus % mp:
        yield finding(
            "error",
            "layout-product",
            "layout",
            f"TP x PP = {layout.tensor_parallel} x {layout.pipeline_parallel} = {mp} does not divide "
            f"{layout.nodes} node(s) x {layout.gpus_per_node} GPUs = {gpus}",
            f"set layout.tensor_parallel and layout.pipeline_parallel so that TP x PP divides {gpus} "
            "(or leave them null: layout.tensor_parallel=null layout.pipeline_parallel=null, the planner picks)",
        )


def _tp_fix(heads: int, kv_heads: int, tp: int, per_node: int) -> str:
    """The nearest tensor-parallel size that divides both head counts and fits a node."""
    valid = [t for t in range(1, per_node + 1) if heads % t == 0 and kv_heads % t == 0]
    best = min(valid, key=lambda t: (abs(t - tp), -t))
    return f"use layout.tensor_parallel={best} (TP must divide the {kv_heads} KV heads: {', '.join(map(str, valid))})"


@check("layout-model-split")
def _model_split(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None or layout.source == "none":
        return
    arch = d.spec.model.architecture
    if arch.num_kv_heads % layout.tensor_parallel or arch.num_heads % layout.tensor_parallel:
        yield finding(
            "error",
            "layout-model-split",
            "layout.tensor_parallel",
            f"tensor parallel {layout.tensor_parallel} does not divide {arch.num_heads} attention heads and "
            f"{arch.num_kv_heads} KV heads of {d.spec.model.name}",
            _tp_fix(arch.num_heads, arch.num_kv_heads, layout.tensor_parallel, layout.gpus_per_node),
        )
    if arch.num_layers % layout.pipeline_parallel:
        yield finding(
            "warning",
            "layout-model-split",
            "layout.pipeline_parallel",
            f"pipeline parallel {layout.pipeline_parallel} does not divide {arch.num_layers} layers: "
            "stages are unbalanced",
            "use a PP size that divides the layer count",
        )


@check("layout-pp-not-executable")
def _pp_executable(d: Draft, layout: Layout) -> Iterator[Finding]:
    """PP > 1 only where the engine runs it: a pin is refused, a published option was replanned (layout.py)."""
    engine = d.spec.knowledge.engine
    if d.train is None or layout.source == "none" or engine.pipeline_parallel:
        return
    pinned = d.spec.layout.pipeline_parallel
    if pinned is not None and pinned > 1:
        arch, tp = d.spec.model.architecture, layout.tensor_parallel * pinned
        split = "layout.sharding=fsdp"
        if (
            engine.tensor_parallel
            and tp <= layout.gpus_per_node
            and not (arch.num_heads % tp or arch.num_kv_heads % tp)
        ):
            split = f"layout.tensor_parallel={tp} or {split}"
        yield finding(
            "error",
            "layout-pp-not-executable",
            "layout.pipeline_parallel",
            f"pipeline parallel {pinned}: the runtime has no pipeline schedule (knowledge.engine.pipeline_parallel"
            f"=false), so every process would hold all {arch.num_layers} layers, not 1/{pinned} of them",
            f"set layout.pipeline_parallel=1; to split the model use {split}",
        )
    elif (
        d.candidate is not None
        and d.candidate.note
        and d.option is not None
        and d.config is not None
        and d.option.pipeline_parallel_size > 1
    ):
        o = d.option
        yield finding(
            "info",
            "layout-pp-not-executable",
            "model.config",
            f"{d.config.urn} publishes {o.training_type}/{o.finetuning_type} on {o.num_nodes} node(s) x "
            f"{o.num_gpus} GPUs as TP{o.tensor_parallel_size} x PP{o.pipeline_parallel_size}; the runtime has no "
            f"pipeline parallel, so the plan runs {d.candidate.note}; memory is estimated for that",
            "to split it otherwise, pin layout.tensor_parallel and layout.sharding",
        )


@check("layout-sharding-not-executable")
def _sharding_executable(d: Draft, layout: Layout) -> Iterator[Finding]:
    """Only the sharding levels the runtime runs as themselves (knowledge.engine), so each is priced as it runs."""
    if d.train is None or layout.source == "none":
        return
    engine = d.spec.knowledge.engine
    cpu = d.spec.inventory.gpu.name == "cpu"
    here = engine.shardings(layout.tensor_parallel, cpu)
    for path, value in (("layout.sharding", d.spec.layout.sharding), ("method.sharding", d.train.sharding)):
        if value == "auto" or value in here:
            continue
        nearest = next((s for s in ("zero2", "fsdp") if s in here), "none")
        fix = f"set {path}={nearest}, or auto to let the search choose among {', '.join(here)}"
        if value not in engine.sharding + engine.sharding_at_load:
            yield finding(
                "error",
                "layout-sharding-not-executable",
                path,
                f"sharding {value}: the runtime does not run it; it runs {', '.join(engine.sharding)} "
                "(knowledge.engine.sharding)",
                fix,
            )
            return
        if layout.data_parallel > 1:
            where = f"with tensor parallel {layout.tensor_parallel}" if layout.tensor_parallel > 1 else "on CPU"
            yield finding(
                "error",
                "layout-sharding-not-executable",
                path,
                f"sharding {value} {where}: the runtime shards the model as it loads, with FSDP2 resharding "
                f"after forward, so {value} would run (and use memory) as {nearest} "
                "(knowledge.engine.sharding_at_load)",
                fix,
            )
            return


@check("layout-tp-not-executable")
def _tp_executable(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None or layout.source == "none" or d.spec.knowledge.engine.tensor_parallel:
        return
    if layout.tensor_parallel > 1:
        path = "layout.tensor_parallel" if d.spec.layout.tensor_parallel else "model.config"
        yield finding(
            "error",
            "layout-tp-not-executable",
            path,
            f"tensor parallel {layout.tensor_parallel}: the runtime does not run it (knowledge.engine."
            "tensor_parallel=false)",
            "set layout.tensor_parallel=1; use layout.sharding=fsdp to split the model",
        )


@check("layout-inventory-gpus")
def _inventory(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None or layout.source == "none":
        return
    inv = d.spec.inventory
    if layout.gpus_per_node > inv.gpus_per_node or layout.nodes > inv.nodes:
        what = (
            f"the customization config {d.config.urn} pins {layout.nodes} node(s) x {layout.gpus_per_node} GPUs"
            if d.option is not None and d.config is not None and not d.spec.layout.pinned
            else f"the layout needs {layout.nodes} node(s) x {layout.gpus_per_node} GPUs"
        )
        best = d.layout_result.best_search if d.layout_result else None
        if best is not None:
            fix = (
                f"use an inventory with {layout.nodes} x {layout.gpus_per_node} GPUs, or pin a layout that "
                f"fits {inv.name}: {best.describe()} (layout.nodes={best.shape.nodes} "
                f"layout.gpus_per_node={best.shape.gpus_per_node} layout.tensor_parallel={best.shape.tp} "
                f"layout.pipeline_parallel={best.shape.pp})"
            )
        else:
            fix = (
                f"use an inventory with {layout.nodes} x {layout.gpus_per_node} {inv.gpu.display_name} or more; "
                f"no layout on {inv.name} fits this method in memory"
                + ("" if d.method_kind == "lora" else ": consider method=lora")
            )
        yield finding(
            "error",
            "layout-inventory-gpus",
            "inventory",
            f"{what}; inventory {inv.name} has {inv.nodes} node(s) x {inv.gpus_per_node} {inv.gpu.display_name}",
            fix,
        )


@check("layout-batch")
def _batch(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None or layout.source == "none":
        return
    unit = layout.micro_batch * layout.data_parallel
    if layout.global_batch % unit:
        yield finding(
            "error",
            "layout-batch",
            "method.batch_size",
            f"global batch {layout.global_batch} does not divide by micro batch {layout.micro_batch} x "
            f"DP {layout.data_parallel} = {unit}",
            f"set method.batch_size to a multiple of {unit}",
        )


@check("launcher-multinode")
def _launcher(d: Draft, layout: Layout) -> Iterator[Finding]:
    kind = resolve_launcher(d.spec)
    if d.train is not None and layout.nodes > 1 and kind in ("local", "torchrun"):
        yield finding(
            "error",
            "launcher-multinode",
            "launcher.kind",
            f"the layout spans {layout.nodes} nodes; the {kind} launcher runs on one machine",
            "use launcher=slurm, or pin layout.nodes=1",
        )


@check("deadline")
def _deadline(d: Draft, layout: Layout) -> Iterator[Finding]:
    deadline = d.spec.goal.deadline_hours
    cand = d.candidate
    if d.train is None or deadline is None or cand is None:
        return
    wall = d.wall_hours if d.wall_hours is not None else cand.time.wall_hours
    if wall > deadline:
        yield finding(
            "warning",
            "deadline",
            "goal.deadline_hours",
            f"expected {wall:.1f} wall-hours > the {deadline:g}-hour deadline with "
            f"{cand.describe()}; {d.spec.inventory.name} has no more GPUs to add",
            "use a larger inventory, fewer epochs, or relax goal.deadline_hours",
        )
