"""Memory per GPU for one layout: model state, activations, logits, set-up; and a calibration's corrections. Pure
arithmetic. Time and FLOPs are in planner.walltime, the per-layer terms in planner.activations.

Every formula and its source is in docs/estimator.md. Units: bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from planner.activations import (
    ALL_LINEAR,
    LOGIT_GRAD_BYTES,
    activation_bytes_per_layer,
    fused_head,
    kv_expansion_bytes_per_layer,
    logits_bytes,
    lora_bytes_per_layer,
    norm_output_bytes_per_layer,
)
from planner.methods import rules
from schemas.calibration import DeviceCalibration
from schemas.knowledge import Estimator
from schemas.layout import AttentionImplementation
from schemas.method import LoraParams, TrainMethod
from schemas.model import Architecture

GB = 10**9

# Bytes per parameter of (weights, grads, optimizer states) for trainable weights, by precision
# and optimizer. Mixed-precision AdamW: bf16 weights + bf16 grads + fp32 master, m, v = 2+2+12.
_STATE_BYTES = {
    ("mixed", "adamw"): (2, 2, 12),
    ("mixed", "adamw_8bit"): (2, 2, 6),  # 8-bit Adam: 6 bytes of optimizer state (fp32 master + 2x int8)
    ("mixed", "adamw_bf16"): (2, 2, 4),  # pure bf16: bf16 moments, no master copy: 8 in all
    ("mixed", "sgd"): (2, 2, 4),  # fp32 master only
    ("fp32", "adamw"): (4, 4, 8),
    ("fp32", "adamw_8bit"): (4, 4, 2),
    ("fp32", "adamw_bf16"): (4, 4, 4),
    ("fp32", "sgd"): (4, 4, 0),
}
ADAPTER_BYTES = 16  # fp32 copy, fp32 grad, two fp32 moments per trainable adapter parameter
# QLoRA (Dettmers et al. 2023, arXiv:2305.14314): NF4 weights are 4 bits; double quantization stores each block of
# 64 weights' absmax in 8 bits plus one fp32 constant per 256 of those: 8/64 + 32/(64*256) = 0.127 bits per
# parameter (the paper's section 3, "Double Quantization"). prepare_model_for_kbit_training casts every weight
# bitsandbytes leaves unquantized (embeddings, norms, lm_head) to fp32.
NF4_BYTES = 0.5
QUANT_CONSTANT_BYTES = (8 / 64 + 32 / (64 * 256)) / 8
UNQUANTIZED_BYTES = 4


@dataclass(frozen=True)
class Shape:
    """The layout knobs the estimator needs."""

    nodes: int
    gpus_per_node: int
    tp: int
    pp: int
    micro_batch: int
    global_batch: int
    seq: int
    sharding: str  # none | zero1 | zero2 | fsdp
    checkpointing: bool
    sequence_parallel: bool = False
    attention: AttentionImplementation = "flash_attention_2"  # layout.attention_implementation, resolved
    # The widest micro batch in tokens: each batch pads to its longest record, so the peak comes with the longest
    # one (resolve.widest_batch); 0: seq, every batch as wide as the cap (packing, or nothing known).
    widest: int = 0
    replay_tokens: float = 0.0  # mean tokens of a replay document (0: unknown, one row per document)

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def dp(self) -> int:
        return self.gpus // (self.tp * self.pp)


def precision_kind(precision: str) -> str:
    return "fp32" if precision == "fp32" else "mixed"


def weight_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


def lora_trainable(arch: Architecture, lora: LoraParams) -> int:
    """r x (d_in + d_out) per adapted linear layer, over all layers (REFERENCE.md)."""
    return _lora_trainable(arch, lora)


@lru_cache(maxsize=512)
def _lora_trainable(arch: Architecture, lora: LoraParams) -> int:  # both frozen, hashable: the search asks often
    shapes = arch.linear_shapes()
    targets = ALL_LINEAR if "all-linear" in lora.target_modules else lora.target_modules
    per_layer = sum(lora.adapter_dim * sum(shapes[t]) for t in targets if t in shapes)
    return per_layer * arch.num_layers


def trainable_params(arch: Architecture, method: TrainMethod) -> int:
    if is_lora(method):
        return lora_trainable(arch, method.lora)
    return arch.total_params


def is_lora(method: TrainMethod) -> bool:
    return method.finetuning_type == "lora"


def quantized_params(arch: Architecture) -> int:
    """The weights bitsandbytes quantizes: every nn.Linear but lm_head, i.e. the decoder's seven projections
    (biases stay unquantized)."""
    return arch.num_layers * sum(d_in * d_out for d_in, d_out in arch.linear_shapes().values())


def qlora_frozen_bytes(arch: Architecture) -> float:
    """The frozen 4-bit base of one whole model: NF4 linear weights with their double-quantized constants, the
    rest (embeddings, norms, lm_head) in fp32."""
    q = quantized_params(arch)
    return q * (NF4_BYTES + QUANT_CONSTANT_BYTES) + (arch.total_params - q) * UNQUANTIZED_BYTES


def dequant_buffer_bytes(arch: Architecture, wbytes: int, tp: int = 1) -> float:
    """bitsandbytes dequantizes one weight at a time to the compute dtype for its matmul: the largest."""
    return max(d_in * d_out for d_in, d_out in arch.linear_shapes().values()) * wbytes / tp


def grad_accum(shape: Shape) -> int:
    """Micro batches per optimizer step on each data-parallel rank (at least 1)."""
    return max(1, shape.global_batch // (shape.micro_batch * max(shape.dp, 1)))


def pipeline_in_flight(shape: Shape) -> int:
    """Micro batches whose activations the first stage holds under 1F1B: pp, or fewer if the step has fewer."""
    return min(shape.pp, grad_accum(shape))


def pipeline_bubble(shape: Shape) -> float:
    """Compute-time factor of the 1F1B pipeline flush: (m + pp - 1) / m for m micro batches per step."""
    m = grad_accum(shape)
    return (m + shape.pp - 1) / m


@dataclass(frozen=True)
class Memory:
    weights: int
    grads: int
    optimizer: int
    activations: int
    logits: int
    adapters: int
    reference_model: int
    kv_cache: int
    overhead: int
    # What the backward overlaps: it writes each layer's gradients as it frees that layer's activations, so the
    # peak holds the larger of the two, not their sum (subtracted from the sum of the terms above).
    backward_overlap: int = 0
    # What the end of the backward adds beyond the gradients and activations above: the embedding's new gradient
    # (tied: its lm_head part, its input part and their sum), added to the kept ones under accumulation.
    gradient_buffers: int = 0
    # The set-up peak above the overhead (CPU): loading maps the checkpoint file beside the weights it fills. The
    # total is the larger of this and the training terms.
    load: int = 0

    @property
    def training(self) -> int:
        """The training peak above the overhead."""
        return (
            self.weights
            + self.grads
            + self.optimizer
            + self.activations
            + self.logits
            + self.adapters
            + self.reference_model
            + self.kv_cache
            - self.backward_overlap
            + self.gradient_buffers
        )

    @property
    def total(self) -> int:
        return max(self.training, self.load) + self.overhead


def memory(
    arch: Architecture, method: TrainMethod, shape: Shape, precision: str, prior: Estimator, is_cpu: bool = False
) -> Memory:
    """Peak bytes per GPU for training with this layout."""
    p = arch.total_params
    model_split = shape.tp * shape.pp
    dp = shape.dp
    kind = precision_kind(precision)
    wb = weight_bytes(precision)
    lora = is_lora(method)
    shard_w = dp if shape.sharding == "fsdp" else 1
    shard_g = dp if shape.sharding in ("fsdp", "zero2") else 1
    shard_o = dp if shape.sharding in ("fsdp", "zero1", "zero2") else 1

    if lora and method.lora.quantization == "4bit":  # QLoRA (docs/estimator.md, 2.2b)
        weights = qlora_frozen_bytes(arch) / model_split / shard_w + dequant_buffer_bytes(arch, wb, shape.tp)
        grads = optimizer = 0.0
        adapters = ADAPTER_BYTES * lora_trainable(arch, method.lora) / model_split
    elif lora:
        weights = wb * p / model_split / shard_w
        grads = optimizer = 0.0
        adapters = ADAPTER_BYTES * lora_trainable(arch, method.lora) / model_split
    else:
        w, gr, opt = _STATE_BYTES[(kind, method.optimizer)]
        weights = w * p / model_split / shard_w
        grads = gr * p / model_split / shard_g
        optimizer = opt * p / model_split / shard_o
        adapters = 0.0

    rule = rules(method)
    # Each micro batch pads to its longest record: the peak comes with the widest batch the data makes.
    width = min(shape.seq, shape.widest) if shape.widest else shape.seq
    # DPO runs chosen and rejected through the policy: twice the sequences per micro batch.
    seqs = shape.micro_batch * rule.sequences_per_example
    if method.replay is not None:  # replay documents join each micro batch, packed into rows of its width
        seqs += replay_rows(method.replay.ratio, shape.micro_batch, width, shape.replay_tokens)
    completion = rule.completion_tokens(method)
    seq = width + completion
    kv_cache = reference = 0.0
    if completion:  # sampling completions (GRPO): a KV cache for the prompt and completion of each generation
        per_token = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * wb / shape.tp
        # TRL generates a whole generation batch at once: micro batch x accumulation completions per device
        kv_cache = per_token * seq * shape.micro_batch * grad_accum(shape)
    if rule.reference_copy(method):
        reference = wb * p / model_split / shard_w

    # With 1F1B the first pipeline stage holds pp micro batches of its L/pp layers: all L layers
    # (fewer when a step has fewer than pp micro batches). Without PP: L layers of one micro batch.
    per_layer = activation_bytes_per_layer(
        arch, seq, seqs, shape.tp, shape.sequence_parallel, shape.attention, shape.checkpointing, wb
    )
    layers = math.ceil(arch.num_layers / shape.pp) * pipeline_in_flight(shape)
    activations: float = per_layer * layers
    if shape.checkpointing:  # one layer is recomputed at a time: its full activations come back
        activations += activation_bytes_per_layer(
            arch, seq, seqs, shape.tp, shape.sequence_parallel, shape.attention, False, wb
        )
    # What the kernel and the method keep beyond that layer (recomputed too under checkpointing: one layer's worth)
    extra = kv_expansion_bytes_per_layer(arch, seq, seqs, shape.tp, shape.attention, wb)
    if lora:
        adapter = method.lora
        if rules(method).disables_dropout:  # DPO and KTO train without dropout (TRL's disable_dropout)
            adapter = adapter.model_copy(update={"adapter_dropout": 0.0})
        extra += lora_bytes_per_layer(arch, adapter, seq, seqs, shape.tp, wb, wb if is_cpu else 1)
    else:
        extra += norm_output_bytes_per_layer(arch, seq, seqs, shape.tp, shape.sequence_parallel, wb)
    activations += extra * (1 if shape.checkpointing else layers)
    logits = logits_bytes(arch, method, seqs * seq, wb, shape.tp, is_cpu)
    overlap = buffers = 0.0
    if grads and shape.sharding == "none" and shape.pp == 1:
        # The backward of full weights, in time (docs/estimator.md, 2.6b). It starts with every activation alive and
        # the loss's transient (the logits'), then the lm_head's (the fp32 gradient of the logits and the lm_head's
        # gradient; the fused head allocates that with its tiles), and writes each layer's gradients as it frees
        # that layer's activations. It ends with the embedding's gradient; a tied embedding gets two (the lm_head's
        # part, kept since the start, and the input's), and their sum. One micro batch a step: the gradients appear
        # during the backward, so it peaks at the larger of its start and its end. With accumulation the gradients
        # of the previous micro batches stay, and the embedding's new ones are added to them at the end.
        head = arch.vocab_size * arch.hidden_size * grads / p
        fused = fused_head(method, is_cpu)
        logit_grad = logits if fused else seqs * seq * arch.vocab_size * LOGIT_GRAD_BYTES / shape.tp
        begin = max(activations + logits, activations + logit_grad + head)
        tied = 2 * head if arch.tied_embeddings else 0.0
        peak = max(begin, grads + tied) if grad_accum(shape) == 1 else grads + max(begin, head + tied)
        overlap = max(0.0, grads + activations + logits - peak)
        buffers = max(0.0, peak - (grads + activations + logits))
    load = 0.0
    if is_cpu and shape.gpus == 1:  # from_pretrained maps the checkpoint file while it fills the weights
        load = wb * p + arch.checkpoint_bytes_per_param * p
    overhead = (prior.cpu_runtime_overhead_gb if is_cpu else prior.runtime_overhead_gb) * GB
    return Memory(
        weights=int(weights),
        grads=int(grads),
        optimizer=int(optimizer),
        activations=int(activations),
        logits=int(logits),
        adapters=int(adapters),
        reference_model=int(reference),
        kv_cache=int(kv_cache),
        overhead=int(overhead),
        backward_overlap=int(overlap),
        gradient_buffers=int(buffers),
        load=int(load),
    )


def replay_rows(ratio: float, micro_batch: int, width: int, doc_tokens: float) -> int:
    """Rows the replay documents of one micro batch take: round(ratio x micro batch) documents (at least one) packed
    end to end into rows as wide as the batch (runtime.replay.ReplayCollator), one row more for the packing's
    slack; one row per document when their length is unknown."""
    docs = max(1, round(ratio * micro_batch))
    if doc_tokens <= 0:
        return docs
    return min(docs, math.ceil(docs * min(doc_tokens, width) / width) + 1)


def calibrated(mem: Memory, cal: DeviceCalibration | None) -> Memory:
    """The estimate with a calibration's measured corrections: each term times its factor (a term the file does
    not list keeps its prior), the measured fixed overhead, and the allocator's fragmentation on the device part."""
    if cal is None:
        return mem
    f = cal.memory_factors
    terms = {k: getattr(mem, k) * f.get(k, 1.0) * cal.fragmentation for k in _DEVICE_TERMS}
    overhead = cal.overhead_bytes if cal.overhead_bytes is not None else mem.overhead
    overlap = mem.backward_overlap * min(f.get("grads", 1.0), f.get("activations", 1.0)) * cal.fragmentation
    return Memory(
        **{k: int(v) for k, v in terms.items()},
        overhead=int(overhead),
        backward_overlap=int(overlap),
        gradient_buffers=int(mem.gradient_buffers * f.get("grads", 1.0) * cal.fragmentation),
        load=int(mem.load * f.get("weights", 1.0)),
    )


_DEVICE_TERMS = (
    "weights",
    "grads",
    "optimizer",
    "activations",
    "logits",
    "adapters",
    "reference_model",
    "kv_cache",
)
