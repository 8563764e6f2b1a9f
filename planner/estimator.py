"""Memory per GPU, FLOPs, GPU-hours and wall time for one layout. Pure arithmetic.

Every formula and its source is in docs/estimator.md. Units: bytes, FLOPs, hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from planner.methods import rules
from schemas.calibration import DeviceCalibration
from schemas.data import DataStats
from schemas.inventory import Inventory
from schemas.knowledge import Estimator
from schemas.layout import AttentionImplementation
from schemas.method import LoraParams, TrainMethod
from schemas.model import Architecture

GB = 10**9
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

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
    if _is_lora(method):
        return lora_trainable(arch, method.lora)
    return arch.total_params


def _is_lora(method: TrainMethod) -> bool:
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


def activation_bytes_per_layer(
    arch: Architecture, s: int, b: int, tp: int, sp: bool, attention: str, checkpointing: bool, wbytes: int
) -> int:
    """Activations one decoder layer keeps for backward, re-derived for SwiGLU and GQA, no dropout.

    At 2 bytes per value: every norm's input (2*s*b*h each; 2 norms in Llama/Qwen/Mistral, 4 in
    Gemma 2), the QKV input and the gate/up input (2*s*b*h each), Q and the o_proj input (2*s*b*q_dim
    each), K and V (2*s*b*kv_dim each), and the MLP's gate output, up output, SiLU output and down
    input (8*s*b*i). With q_dim = h, kv_dim = g*h (g = kv_heads/heads) and two norms this is
    (12 + 4g)*s*b*h + 8*s*b*i. With tensor parallel t, the norm and projection inputs stay whole
    unless sequence parallel splits them; the rest divides by t. Full recompute keeps only each
    layer's input, 2*s*b*h. Scaled by wbytes/2 for fp32 runs. Plus what the attention kernel keeps
    of the s x s scores (score_bytes_per_layer). Derivation: docs/estimator.md.
    """
    h, i = arch.hidden_size, arch.intermediate_size
    scale = wbytes / 2
    if checkpointing:
        return int(2 * s * b * h / (tp if sp else 1) * scale)
    whole = (2 * arch.norms_per_layer + 4) * s * b * h
    split = (4 * arch.q_dim + 4 * arch.kv_dim) * s * b + 8 * s * b * i
    per = (whole / tp if sp else whole) + split / tp
    return int(per * scale + score_bytes_per_layer(arch, s, b, tp, attention, wbytes))


def score_bytes_per_layer(arch: Architecture, s: int, b: int, tp: int, attention: str, wbytes: int) -> float:
    """What one layer's attention keeps of the s x s scores for the backward (measured: docs/estimator.md, 2.6).

    eager: the softmax output, computed in fp32 (4 bytes a score) and its copy in the compute dtype that the
    product with V keeps (2 more in bf16; none in fp32, where the cast is a no-op): a*s^2*b scores, split by
    heads under TP. sdpa: no scores, but a micro batch of more than one sequence pads to its longest and the
    kernel keeps the padding mask as an additive bias, b*s^2 values in the compute dtype per layer, whole on
    every TP rank. flash_attention_2: nothing (padding is removed before the kernel)."""
    if attention == "eager":
        return arch.num_heads * s * s * b * (4 + (wbytes if wbytes < 4 else 0)) / tp
    if attention == "sdpa" and b > 1:
        return b * s * s * wbytes
    return 0.0


def expanded_kv(attention: str, b: int) -> bool:
    """Whether K and V reach the attention kernel repeated to the query heads (transformers' repeat_kv), so that
    autograd keeps them q_dim wide, not kv_dim: eager always; sdpa when it gets a padding mask (a micro batch of
    more than one sequence: torch's own GQA path takes no mask); flash_attention_2 never (measured:
    docs/estimator.md, 2.6)."""
    return attention == "eager" or (attention == "sdpa" and b > 1)


def kv_expansion_bytes_per_layer(arch: Architecture, s: int, b: int, tp: int, attention: str, wbytes: int) -> float:
    """What repeated K and V keep beyond their kv_dim width: 2 * (q_dim - kv_dim) values a token, split by heads."""
    if not expanded_kv(attention, b):
        return 0.0
    return 2 * (arch.q_dim - arch.kv_dim) * s * b * wbytes / tp


def norm_output_bytes_per_layer(arch: Architecture, s: int, b: int, tp: int, sp: bool, wbytes: int) -> float:
    """Training a norm's weight keeps its normalized input (the weight's gradient is grad x normalized): one h-wide
    tensor per norm, full weights only (LoRA freezes the norms); replicated under TP unless sequence parallel."""
    return arch.norms_per_layer * s * b * arch.hidden_size * wbytes / (tp if sp else 1)


def lora_bytes_per_layer(
    arch: Architecture, lora: LoraParams, s: int, b: int, tp: int, wbytes: int, mask_bytes: int
) -> float:
    """What a LoRA layer keeps beside activation_bytes_per_layer's (which prices the full-weight layer), per layer.

    A frozen linear keeps nothing of its input (its weight has no gradient); lora_A keeps the input it multiplies.
    At adapter_dropout 0 that input is the module's own, shared by the adapters that read it: the QKV input, the
    gate/up input and the down input stay as priced, and are not kept when no adapter reads them. At dropout > 0
    PEFT drops the input of every adapted module separately: each keeps its dropped copy (wbytes a value) and the
    dropout mask (mask_bytes: the compute dtype on CPU, where dropout multiplies by a mask of the input's dtype; one
    byte on CUDA, native_dropout's bool mask), and the undropped inputs are kept by nobody. o_proj's input, the
    attention output, is kept by the attention kernel anyway. Measured: docs/estimator.md, 2.7b."""
    shapes = arch.linear_shapes()
    targets = ALL_LINEAR if "all-linear" in lora.target_modules else tuple(lora.target_modules)
    adapted = [t for t in targets if t in shapes]
    h, i = arch.hidden_size, arch.intermediate_size
    qkv = any(t in adapted for t in ("q_proj", "k_proj", "v_proj"))
    gate_up = any(t in adapted for t in ("gate_proj", "up_proj"))
    down = "down_proj" in adapted
    dropout = lora.adapter_dropout > 0
    # the inputs activation_bytes_per_layer prices that a LoRA layer does not keep
    unkept = (h if dropout or not qkv else 0) + (h if dropout or not gate_up else 0)
    unkept_split = i if dropout or not down else 0
    delta = -(unkept + unkept_split / tp) * s * b * wbytes
    if dropout:
        width = sum(shapes[t][0] / (tp if t in ("o_proj", "down_proj") else 1) for t in adapted)
        delta += (wbytes + mask_bytes) * s * b * width
    return delta


LOGIT_GRAD_BYTES = 4  # the fp32 gradient of the logits, alive while the lm_head's backward runs
LOGIT_LOSS_BYTES = 8  # fp32 log-softmax output kept by the loss + the fp32 gradient of the logits in the backward


# TRL's fused LM head (trl/kernels/chunked_logprob.py) scores the vocabulary in tiles of at most this many tokens x
# vocabulary columns instead of materializing the logits.
FUSED_TOKENS, FUSED_VOCAB = 4096, 32768
FUSED_TILES_CPU = 8  # tiles alive in its backward without Triton (CPU): measured 7.8 (DPO) and 7.9 (GRPO)


def fused_head(method: TrainMethod, is_cpu: bool) -> bool:
    """Whether the estimate prices TRL's fused LM head: the DPO, KTO and GRPO trainers on CPU. The runtime's SFT
    recipe (lora, sft) computes the loss from the full logits on CPU (runtime/recipes/sft.py: the tiles run as Python
    loops there). On a GPU every TRL trainer scores through the fused head's Triton kernels, which hold about one
    tile; the estimate keeps pricing full logits there (docs/estimator.md, 2.7: derived, not measured)."""
    return is_cpu and method.kind not in ("lora", "sft")


def logits_bytes(arch: Architecture, method: TrainMethod, tokens: int, wbytes: int, tp: int, is_cpu: bool) -> float:
    """What scoring the vocabulary holds at its peak for a forward of `tokens` tokens (docs/estimator.md, 2.7).

    Full logits: tokens x vocab x logit_bytes_per_value, the vocabulary split by TP. TRL's fused LM head on CPU (no
    Triton): FUSED_TILES_CPU fp32 tiles of min(tokens, 4096) x min(vocab, 32768) in its torch backward (the tile's
    logits, log-probabilities, probabilities, gradient and their temporaries; measured)."""
    if fused_head(method, is_cpu):
        return FUSED_TILES_CPU * min(tokens, FUSED_TOKENS) * min(arch.vocab_size, FUSED_VOCAB) * 4
    return tokens * arch.vocab_size * logit_bytes_per_value(wbytes) / tp


def logit_bytes_per_value(wbytes: int) -> int:
    """Logits in the compute dtype, the loss's fp32 copy when they are not fp32 already, its fp32 log-softmax and
    the fp32 gradient of the logits: 12 bytes per value in fp32 (measured), 14 in bf16."""
    return wbytes + (4 if wbytes < 4 else 0) + LOGIT_LOSS_BYTES


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
    lora = _is_lora(method)
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


def calibrated_prior(prior: Estimator, cal: DeviceCalibration | None) -> Estimator:
    """The priors with a calibration's measured MFU (its range: +-25% around it); unchanged without one."""
    if cal is None or cal.mfu is None:
        return prior
    mfu = min(cal.mfu, 1.0)
    return prior.model_copy(update={"mfu": mfu, "mfu_low": mfu * 0.75, "mfu_high": min(1.0, mfu * 1.25)})


def tokens_per_second(arch: Architecture, method: TrainMethod, shape: Shape, inventory: Inventory, mfu: float) -> float:
    """Trained tokens per second of the whole layout at this MFU (the compute model of time(), no fixed costs)."""
    per_token = flops_per_token(arch, method) + (2 * arch.total_params if shape.checkpointing else 0)
    return shape.gpus * inventory.gpu.bf16_tflops * 1e12 * mfu / per_token / pipeline_bubble(shape)


def flops_per_token(arch: Architecture, method: TrainMethod) -> float:
    """Training FLOPs per trained token: 6P full, 4P LoRA (no weight-gradient GEMMs for frozen
    weights); DPO adds a reference forward (2P) per token; GRPO adds 2P with a KL reference."""
    p = arch.total_params
    base = 4 * p if _is_lora(method) else 6 * p
    if rules(method).reference_forward(method):
        base += 2 * p
    return base


@dataclass(frozen=True)
class Time:
    tokens: int
    steps: int
    flops: float
    wall_hours: float
    wall_low: float
    wall_high: float
    generated_tokens: int = 0

    def gpu_hours(self, gpus: int) -> tuple[float, float, float]:
        return self.wall_hours * gpus, self.wall_low * gpus, self.wall_high * gpus


def trained_tokens(stats: DataStats, method: TrainMethod, seq: int) -> tuple[int, int]:
    """(tokens per epoch, examples per epoch). Without packing each micro batch pads to its longest
    record, so count p95 per record; with packing, the real total. Capped by the sequence length."""
    n = stats.training.records
    per_epoch: float
    if method.sequence_packing:
        per_epoch = min(stats.training.tokens_total, n * seq)
    else:
        per_epoch = n * min(seq, stats.training.tokens_p95 or seq)
    per_epoch *= rules(method).sequences_per_example  # DPO: chosen and rejected
    if method.replay is not None:  # replay documents ride along in every batch, counted at the task's length
        per_epoch *= 1 + method.replay.ratio
    return int(per_epoch), n


def time(
    arch: Architecture,
    method: TrainMethod,
    shape: Shape,
    inventory: Inventory,
    stats: DataStats,
    prior: Estimator,
    checkpoint_bytes: int,
) -> Time:
    """Wall time: compute at an MFU prior plus fixed costs (load, eval, checkpoints, generation)."""
    tokens_epoch, examples = trained_tokens(stats, method, shape.seq)
    steps_epoch = max(1, math.ceil(examples / shape.global_batch)) if examples else 0
    steps = steps_epoch * method.epochs
    epochs: float = method.epochs
    if method.max_steps is not None and method.max_steps < steps:
        epochs = method.max_steps / max(steps_epoch, 1)
        steps = method.max_steps
    tokens = int(tokens_epoch * epochs)
    generated = 0
    rule = rules(method)
    if rule.completion_tokens(method):  # every prompt is sampled generations_per_prompt times, then trained on
        group = rule.generations_per_prompt(method)
        generated = int(examples * epochs) * group * rule.completion_tokens(method)
        tokens = int(tokens_epoch * epochs * group) + generated
    flops = flops_per_token(arch, method) * tokens
    if shape.checkpointing:  # full recompute: one more forward pass, 2P per token
        flops += 2 * arch.total_params * tokens
    peak = shape.gpus * inventory.gpu.bf16_tflops * 1e12

    bubble = pipeline_bubble(shape)  # 1.0 without pipeline parallel

    def hours(mfu: float) -> float:
        compute = flops / (peak * mfu) * bubble
        gen = 0.0
        if generated:  # decoding is bandwidth-bound: scale the 8B/H100 prior by size and bandwidth
            rate = (
                prior.generation_tokens_per_second * (8e9 / arch.total_params) * (inventory.gpu.bandwidth_gbps / 3350)
            )
            gen = generated / (rate * max(shape.dp, 1))
        fixed = prior.load_minutes * 60 + compute * prior.eval_fraction
        ckpt = math.ceil(epochs) * checkpoint_bytes / (prior.checkpoint_gb_per_minute * GB / 60)
        return (compute + gen + fixed + ckpt) / 3600

    return Time(
        tokens=tokens,
        steps=steps,
        flops=flops,
        wall_hours=hours(prior.mfu),
        wall_low=hours(prior.mfu_high),
        wall_high=hours(prior.mfu_low),
        generated_tokens=generated,
    )


def checkpoint_bytes(arch: Architecture, method: TrainMethod) -> int:
    """What one resumable checkpoint writes: trainable weights and their optimizer state."""
    if _is_lora(method):
        return ADAPTER_BYTES * lora_trainable(arch, method.lora)
    return 16 * arch.total_params
