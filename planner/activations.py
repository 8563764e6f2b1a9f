"""What one decoder layer keeps for the backward, and what scoring the vocabulary holds: the per-token terms of the
memory estimate (planner.estimator sums them over layers and micro batches). Pure arithmetic.

Every formula and the measurement behind it is in docs/estimator.md, section 2.
"""

from __future__ import annotations

from schemas.method import LoraParams, TrainMethod
from schemas.model import Architecture

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


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
