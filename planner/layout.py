"""The parallel layout: honour a pinned training option, or search for the cheapest that fits.

Cheapest means fewest GPU-hours, then fewest GPUs, then no recompute, less sharding, smaller TP,
larger micro batch. Only layouts the runtime executes are planned (knowledge.engine): a published
option the engine cannot run becomes the nearest layout it can, with a note the checks report.
Pure: the inventory is an input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

from planner import estimator as est
from planner import walltime as wt
from schemas.calibration import DeviceCalibration
from schemas.data import DataStats
from schemas.inventory import Inventory
from schemas.knowledge import Engine, Estimator
from schemas.layout import AttentionImplementation, LayoutRequest
from schemas.method import TrainMethod
from schemas.model import Architecture, TrainingOption

GB = est.GB
SHARDING_ORDER = {"none": 0, "zero1": 1, "zero2": 2, "fsdp": 3}


@dataclass(frozen=True)
class Candidate:
    shape: est.Shape
    memory: est.Memory
    time: wt.Time
    capacity: int
    note: str = ""  # why this stands in for a published option the engine cannot run (a check reports it)

    @property
    def fits(self) -> bool:
        return self.memory.total <= self.capacity

    @property
    def gpu_hours(self) -> float:
        return self.time.wall_hours * self.shape.gpus

    def key(self) -> tuple:
        return _key(self.shape, self.time)

    def describe(self) -> str:
        s = self.shape
        parts = [f"{s.gpus} GPU{'s' if s.gpus > 1 else ''}"]
        if s.nodes > 1:
            parts[0] = f"{s.nodes} nodes x {s.gpus_per_node}"
        if s.tp > 1:
            parts.append(f"TP{s.tp}")
        if s.pp > 1:
            parts.append(f"PP{s.pp}")
        if s.dp > 1:
            parts.append(f"DP{s.dp}")
        if s.sharding != "none":
            parts.append(s.sharding.upper() if s.sharding == "fsdp" else s.sharding)
        if s.checkpointing:
            parts.append("activation checkpointing")
        parts.append(f"micro batch {s.micro_batch}")
        return ", ".join(parts)


def _key(s: est.Shape, t: wt.Time) -> tuple:
    """Cheapest first: GPU-hours, GPUs, no recompute, less sharding, smaller TP and PP, larger micro batch."""
    return (
        round(t.wall_hours * s.gpus, 4),
        s.gpus,
        s.checkpointing,
        SHARDING_ORDER[s.sharding],
        s.tp,
        s.pp,
        -s.micro_batch,
    )


@dataclass(frozen=True)
class Context:
    """What a layout is evaluated against."""

    arch: Architecture
    method: TrainMethod
    inventory: Inventory
    stats: DataStats
    prior: Estimator
    precision: str
    seq: int
    headroom: float
    engine: Engine = field(default_factory=Engine)
    calibration: DeviceCalibration | None = None  # measured corrections for this GPU type (planner.calibrate)
    attention: AttentionImplementation = "sdpa"  # layout.attention_implementation resolved: every shape runs it
    widest: int = 0  # tokens of the widest micro batch (resolve.widest_batch); 0: seq
    replay_tokens: float = 0.0  # mean tokens of a replay document (resolve.replay_tokens); 0: unknown

    def __post_init__(self) -> None:
        # bitsandbytes' 4-bit weights are not split by transformers' tensor-parallel plans: a QLoRA layout
        # splits the model by FSDP (or not at all), never by TP
        if self.method.finetuning_type == "lora" and self.method.lora.quantization is not None:
            object.__setattr__(self, "engine", self.engine.model_copy(update={"tensor_parallel": False}))

    @property
    def capacity(self) -> int:
        return int(self.inventory.gpu.memory_gb * GB * self.headroom)

    @property
    def is_cpu(self) -> bool:
        return self.inventory.gpu.name == "cpu"

    @cached_property
    def checkpoint_bytes(self) -> int:
        return wt.checkpoint_bytes(self.arch, self.method)

    @cached_property
    def times(self) -> dict[tuple, wt.Time]:
        """wt.time per the shape fields it reads (a search asks for the same one many times)."""
        return {}


@dataclass
class Result:
    chosen: Candidate | None
    source: str  # pinned | search
    alternatives: list[tuple[Candidate, str]] = field(default_factory=list)
    best_search: Candidate | None = None  # what the search would pick, to compare with a pin


def evaluate(ctx: Context, shape: est.Shape) -> Candidate:
    if (shape.attention, shape.widest, shape.replay_tokens) != (ctx.attention, ctx.widest, ctx.replay_tokens):
        # what the plan runs and what the data makes, the same for every shape
        shape = dataclasses.replace(shape, attention=ctx.attention, widest=ctx.widest, replay_tokens=ctx.replay_tokens)
    mem = est.calibrated(
        est.memory(ctx.arch, ctx.method, shape, ctx.precision, ctx.prior, is_cpu=ctx.is_cpu), ctx.calibration
    )
    return Candidate(shape=shape, memory=mem, time=_time(ctx, shape), capacity=ctx.capacity)


def _time(ctx: Context, shape: est.Shape) -> wt.Time:
    # wt.time reads only these of the shape (sharding, TP and memory-only knobs do not change it).
    key = (shape.gpus, shape.dp, shape.seq, shape.global_batch, shape.checkpointing, est.pipeline_bubble(shape))
    t = ctx.times.get(key)
    if t is None:
        t = ctx.times[key] = wt.time(
            ctx.arch, ctx.method, shape, ctx.inventory, ctx.stats, ctx.prior, ctx.checkpoint_bytes
        )
    return t


def from_option(ctx: Context, option: TrainingOption, request: LayoutRequest) -> Candidate:
    """The published option, with the user's pins for what it leaves open; one with PP > 1 that the
    engine cannot run becomes the nearest layout it can on the same GPUs (`executable`)."""
    gpus = option.num_gpus * option.num_nodes
    dp = max(1, gpus // (option.tensor_parallel_size * option.pipeline_parallel_size))
    sharding = _sharding(ctx, request, dp)
    shape = est.Shape(
        nodes=option.num_nodes,
        gpus_per_node=option.num_gpus,
        tp=option.tensor_parallel_size,
        pp=option.pipeline_parallel_size,
        micro_batch=request.micro_batch or option.micro_batch_size,
        global_batch=ctx.method.batch_size,
        seq=ctx.seq,
        sharding=sharding if sharding != "auto" else "none",
        checkpointing=_checkpointing(ctx, request, default=False),
    )
    if (shape.pp > 1 and not ctx.engine.pipeline_parallel) or (shape.tp > 1 and not ctx.engine.tensor_parallel):
        return executable(ctx, shape, request)
    return evaluate(ctx, shape)


def executable(ctx: Context, published: est.Shape, request: LayoutRequest) -> Candidate:
    """The nearest layout without pipeline parallel (and without tensor parallel where the engine runs none, as
    for a QLoRA base) on the published option's GPUs.

    First choice: fold PP into TP (TP x PP -> TP), when the heads divide and it stays within a node
    and the engine runs TP. The model is split as many ways as published, so the data-parallel size,
    micro batch and sharding stay as they were, and TP's per-layer all-reduce stays on NVLink. Else
    (a split across nodes, heads that do not divide): the PP stages become data-parallel replicas
    (TP x DP*PP) sharded with FSDP, which splits weights, grads and optimizer state instead. The
    first of the two that fits memory wins; when neither fits, the smaller, so the memory check
    names the nearer one.
    """
    s, arch, engine = published, ctx.arch, ctx.engine
    folded_tp = s.tp * s.pp
    tries: list[est.Shape] = []
    no_fold = (
        "the runtime runs no tensor parallel"
        if not engine.tensor_parallel
        else f"TP{folded_tp} would cross nodes"
        if folded_tp > s.gpus_per_node
        else f"TP{folded_tp} does not divide the attention heads"
        if arch.num_heads % folded_tp or arch.num_kv_heads % folded_tp
        else ""
    )
    if not no_fold:
        tries.append(
            est.Shape(
                s.nodes,
                s.gpus_per_node,
                folded_tp,
                1,
                s.micro_batch,
                s.global_batch,
                s.seq,
                s.sharding,
                s.checkpointing,
            )
        )
    tp = s.tp if engine.tensor_parallel else 1
    dp = s.gpus // tp
    pinned = request.sharding if request.sharding != "auto" else ctx.method.sharding
    sharding = pinned if pinned != "auto" else max(engine.shardings(tp, ctx.is_cpu), key=SHARDING_ORDER.__getitem__)
    micro = [request.micro_batch] if request.micro_batch else range(s.micro_batch, 0, -1)
    mb = next((m for m in micro if s.global_batch % (m * dp) == 0), s.micro_batch)  # else the batch check says
    replicas = est.Shape(s.nodes, s.gpus_per_node, tp, 1, mb, s.global_batch, s.seq, sharding, s.checkpointing)
    if not tries or s.global_batch % (mb * dp) == 0:
        tries.append(replicas)
    cands = [evaluate(ctx, t) for t in tries]
    cand = next((c for c in cands if c.fits), min(cands, key=lambda c: c.memory.total))
    if cand.shape.tp == folded_tp:
        why = "PP folded into TP: the model split as many ways, within the node"
    else:
        split = "the pipeline stages" if s.pp > 1 else f"the TP{s.tp} split"
        why = f"{split} as data-parallel replicas; {no_fold or f'TP{folded_tp} does not fit memory'}"
    return dataclasses.replace(cand, note=f"{cand.describe()} ({why})")


def from_request(ctx: Context, request: LayoutRequest) -> Candidate:
    """A layout the user pinned outright (checks report what is wrong with it)."""
    nodes = request.nodes or 1
    gpn = request.gpus_per_node or 1
    tp = request.tensor_parallel or 1
    pp = request.pipeline_parallel or 1
    dp = max(1, (nodes * gpn) // (tp * pp))
    sharding = _sharding(ctx, request, dp)
    return evaluate(
        ctx,
        est.Shape(
            nodes=nodes,
            gpus_per_node=gpn,
            tp=tp,
            pp=pp,
            micro_batch=request.micro_batch or 1,
            global_batch=ctx.method.batch_size,
            seq=ctx.seq,
            sharding=sharding if sharding != "auto" else "none",
            checkpointing=_checkpointing(ctx, request, default=False),
        ),
    )


def _sharding(ctx: Context, request: LayoutRequest, dp: int) -> str:
    choice = request.sharding if request.sharding != "auto" else ctx.method.sharding
    return choice if choice == "auto" or dp > 1 or choice == "none" else "none"


def _checkpointing(ctx: Context, request: LayoutRequest, default: bool) -> bool:
    for value in (request.activation_checkpointing, ctx.method.activation_checkpointing):
        if value is not None:
            return value
    return default


def search(ctx: Context, request: LayoutRequest) -> Result:
    """Enumerate layouts within the inventory and the pins; keep the cheapest that fits."""
    inv, arch = ctx.inventory, ctx.arch
    gb = ctx.method.batch_size
    # More GPUs than global batch x the widest TP x the deepest PP leave DP above the batch (skipped below): the
    # node counts past that bound are never searched, so a huge inventory plans as fast as a small one.
    widest = (request.tensor_parallel or inv.gpus_per_node) if ctx.engine.tensor_parallel else 1
    deepest = (request.pipeline_parallel or arch.num_layers) if ctx.engine.pipeline_parallel else 1
    useful_nodes = max(1, gb * widest * deepest // max(1, request.gpus_per_node or inv.gpus_per_node))
    nodes_opts = [request.nodes] if request.nodes else range(1, min(inv.nodes, useful_nodes) + 1)
    fitting: list[Candidate] = []
    smallest: Candidate | None = None
    for nodes in nodes_opts:
        gpn_opts = [request.gpus_per_node] if request.gpus_per_node else _gpn_options(inv.gpus_per_node, nodes)
        for gpn in gpn_opts:
            gpus = nodes * gpn
            # Pins are honoured (a check refuses one the engine cannot run); the rest is what it runs.
            tp_opts = (
                [request.tensor_parallel]
                if request.tensor_parallel
                else [
                    t
                    for t in _pow2(gpn if ctx.engine.tensor_parallel else 1)
                    if arch.num_kv_heads % t == 0 and arch.num_heads % t == 0
                ]
            )
            for tp in tp_opts:
                pp_opts = (
                    [request.pipeline_parallel]
                    if request.pipeline_parallel
                    else [
                        p for p in _pow2(gpus // tp if ctx.engine.pipeline_parallel else 1) if arch.num_layers % p == 0
                    ]
                )
                for pp in pp_opts:
                    if gpus % (tp * pp):
                        continue
                    dp = gpus // (tp * pp)
                    if gb % dp:
                        continue
                    shard_opts = _shard_options(ctx, request, dp, tp)
                    ckpt_opts = (
                        [request.activation_checkpointing]
                        if request.activation_checkpointing is not None
                        else [ctx.method.activation_checkpointing]
                        if ctx.method.activation_checkpointing is not None
                        else [False, True]
                    )
                    mb_opts = (
                        [request.micro_batch]
                        if request.micro_batch
                        else [m for m in (16, 8, 4, 2, 1) if m * dp <= gb and gb % (m * dp) == 0]
                    )
                    for sharding in shard_opts:
                        for ckpt in ckpt_opts:
                            # Largest first, up to the first that fits. Memory grows with the micro batch,
                            # so every smaller one fits too; without PP they take the same time and lose
                            # the tie, with PP they shrink the bubble: keep the best of them by key. Only
                            # the best of a (GPUs, TP, PP, sharding, recompute) signature can be chosen or
                            # listed as an alternative, so the others need no memory estimate.
                            for n, mb in enumerate(mb_opts):
                                shape = est.Shape(nodes, gpn, tp, pp, mb, gb, ctx.seq, sharding, ckpt)
                                cand = evaluate(ctx, shape)
                                if smallest is None or cand.memory.total < smallest.memory.total:
                                    smallest = cand
                                if cand.fits:
                                    if pp > 1:
                                        best_shape = min(
                                            [shape]
                                            + [
                                                est.Shape(nodes, gpn, tp, pp, m, gb, ctx.seq, sharding, ckpt)
                                                for m in mb_opts[n + 1 :]
                                            ],
                                            key=lambda sh: _key(sh, _time(ctx, sh)),
                                        )
                                        if best_shape is not shape:
                                            cand = evaluate(ctx, best_shape)
                                    fitting.append(cand)
                                    break
    if not fitting:
        return Result(
            chosen=None,
            source="search",
            best_search=None,
            alternatives=[(smallest, "smallest footprint found, still too large")] if smallest else [],
        )
    fitting.sort(key=Candidate.key)
    best = fitting[0]
    return Result(chosen=best, source="search", best_search=best, alternatives=_alternatives(best, fitting[1:]))


def _alternatives(best: Candidate, rest: list[Candidate]) -> list[tuple[Candidate, str]]:
    out: list[tuple[Candidate, str]] = []
    seen = {(best.shape.gpus, best.shape.tp, best.shape.pp, best.shape.sharding, best.shape.checkpointing)}
    for cand in rest:
        sig = (cand.shape.gpus, cand.shape.tp, cand.shape.pp, cand.shape.sharding, cand.shape.checkpointing)
        if sig in seen:
            continue
        seen.add(sig)
        out.append((cand, why_lost(best, cand)))
        if len(out) == 3:
            break
    return out


def why_lost(best: Candidate, other: Candidate) -> str:
    if other.gpu_hours > best.gpu_hours * 1.005:
        return f"{other.gpu_hours:.2f} GPU-hours against {best.gpu_hours:.2f}"
    if other.shape.gpus > best.shape.gpus:
        return f"{other.shape.gpus} GPUs where {best.shape.gpus} suffice"
    if other.shape.checkpointing and not best.shape.checkpointing:
        return "recomputes activations where memory allows keeping them"
    if SHARDING_ORDER[other.shape.sharding] > SHARDING_ORDER[best.shape.sharding]:
        return "more sharding traffic for no memory it needs"
    if other.shape.tp > best.shape.tp:
        return "more tensor-parallel traffic for no memory it needs"
    return "smaller micro batch, lower throughput"


def _pow2(limit: int) -> list[int]:
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


def _gpn_options(per_node: int, nodes: int) -> list[int]:
    # A multi-node job uses whole nodes; a single node may use a power-of-two share of its GPUs.
    if nodes > 1:
        return [per_node]
    return sorted({*_pow2(per_node), per_node})


def _shard_options(ctx: Context, request: LayoutRequest, dp: int, tp: int) -> list[str]:
    """A pinned level (a check refuses one the engine cannot run), else every level the engine runs as itself."""
    choice = request.sharding if request.sharding != "auto" else ctx.method.sharding
    if choice != "auto":
        return [choice]
    return ["none"] if dp == 1 else sorted(ctx.engine.shardings(tp, ctx.is_cpu), key=SHARDING_ORDER.__getitem__)
