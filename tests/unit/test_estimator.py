# Sources: /work/shared/REFERENCE.md ("Memory and compute": 16 bytes/param from the ZeRO paper and
# EleutherAI "Transformer Math 101", activations after Korthikanti et al. 2022, LoRA counts) and
# DESIGN.md (the seed's run: Llama 3.1 8B LoRA r8, 400 examples, 10 epochs, under 30 min on one H100).
# Formulas and their derivation: docs/estimator.md.
"""The estimator against numbers worked out by hand from the formulas. Pure Python: no torch.

Every expected value below is written out from the formula in docs/estimator.md (s*b*h terms, bytes per
parameter), never by calling the function under test a second time.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from planner import activations as act
from planner import estimator as est
from planner import walltime as wt
from schemas.data import DataStats, SplitStats
from schemas.inventory import Gpu, Inventory
from schemas.knowledge import Estimator
from schemas.method import Dpo, Grpo, Lora, LoraParams, Sft
from schemas.model import Model

CONF = Path(__file__).resolve().parents[2] / "conf"
MODEL_FILES = sorted(p for p in (CONF / "model").glob("*.yaml") if p.stem != "local")  # local: from config.json
GB = 10**9


def _model(name: str) -> Model:
    return Model.model_validate(yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text()))


def _gpu(name: str) -> Gpu:
    return Gpu.model_validate(yaml.safe_load((CONF / "gpu" / f"{name}.yaml").read_text()))


LLAMA8 = _model("llama-3.1-8b-instruct").architecture
LLAMA1 = _model("llama-3.2-1b-instruct").architecture
GEMMA9 = _model("gemma-2-9b-it").architecture
PRIOR = Estimator.model_validate(yaml.safe_load((CONF / "knowledge" / "default.yaml").read_text())["estimator"])
H100 = _gpu("h100-sxm")
H100_NODE = Inventory(name="one-h100-node", nodes=1, gpus_per_node=8, cpus_per_node=112, memory_per_node_gb=2048,
                      scheduler="none", gpu=H100)

# Llama 3.1 8B (config.json): every number the hand computations use.
P = 8_030_261_248
H, I, L, A, KV, D, V = 4096, 14336, 32, 32, 8, 128, 128_256
G = KV / A  # GQA ratio: 8 KV heads for 32 query heads
OVERHEAD = 2 * GB  # conf/knowledge/default.yaml runtime_overhead_gb


def shape(gpus=1, tp=1, pp=1, mb=1, gb=8, seq=512, sharding="none", ckpt=False, nodes=1) -> est.Shape:
    return est.Shape(nodes=nodes, gpus_per_node=gpus, tp=tp, pp=pp, micro_batch=mb, global_batch=gb, seq=seq,
                     sharding=sharding, checkpointing=ckpt)


def mem(method, sh, arch=LLAMA8, precision="bf16-mixed") -> est.Memory:
    return est.memory(arch, method, sh, precision, PRIOR)


def act_layer(s, b, t=1):
    """One Llama 8B layer, SwiGLU + GQA, no dropout, 2 bytes a value: (12 + 4g)*sbh + 8*sbi, flash attention.
    Under TP without sequence parallel the two norm inputs, the QKV input and the gate/up input stay whole
    (8*sbh); Q, K, V, the o_proj input and the four MLP intermediates divide by t."""
    whole = 8 * s * b * H
    split = (4 + 4 * G) * s * b * H + 8 * s * b * I
    return whole + split / t


def logits(s, b, t=1):
    # bf16 logits + an fp32 copy in the loss + its fp32 log-softmax + the fp32 gradient, vocab split by TP
    return b * s * V * (2 + 4 + 4 + 4) / t


def lora_layer(s, b, wbytes=2, mask=1):
    """All-linear LoRA at dropout > 0, one Llama 8B layer, beside act_layer: a dropped copy (wbytes) and a mask
    (1 byte on a GPU) of each adapted module's input: q, k, v, gate, up (h wide each), o (q_dim = h), down (i);
    and the inputs act_layer prices that nobody keeps (frozen linears keep none, the adapters read the dropped
    copies): the QKV input and the gate/up input (h each), the down input (i)."""
    return (wbytes + mask) * s * b * (5 * H + H + I) - wbytes * s * b * (2 * H + I)


def norm_out(s, b, wbytes=2):
    """Training the two norms' weights keeps each norm's normalized input: 2*sbh a layer, full weights only."""
    return 2 * s * b * H * wbytes


def test_act_layer_is_the_rederived_34():
    # (12 + 4g) with g = 1/4 is 13; against Korthikanti's 34*sbh for a GeLU 4h MLP with dropout.
    s, b = 512, 1
    assert act_layer(s, b) == 13 * s * b * H + 8 * s * b * I == 85_983_232


# ---------------------------------------------------------------- LoRA trainable counts (REFERENCE.md)

@pytest.mark.parametrize(("arch", "r", "modules", "expected"), [
    (LLAMA8, 16, ("all-linear",), 41_943_040),
    (LLAMA8, 16, ("q_proj", "v_proj"), 6_815_744),
    (LLAMA1, 16, ("all-linear",), 11_272_192),
    (LLAMA8, 8, ("all-linear",), 20_971_520),  # the seed's rank 8: half of rank 16
])
def test_lora_trainable(arch, r, modules, expected):
    assert est.lora_trainable(arch, LoraParams(adapter_dim=r, target_modules=modules)) == expected


def test_lora_trainable_by_hand():
    # q: 16*(4096+4096), k, v: 16*(4096+1024) each, o: 16*(4096+4096), gate, up, down: 16*(4096+14336) each.
    per_layer = 16 * ((H + H) * 2 + (H + KV * D) * 2 + (H + I) * 3)
    assert per_layer * L == 41_943_040


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_catalog_parameter_counts(path):
    arch = Model.model_validate(yaml.safe_load(path.read_text())).architecture
    assert arch.computed_params() == arch.total_params


# ---------------------------------------------------------------- memory per method, by hand

def test_lora_bf16_base_one_gpu():
    m = mem(Lora(lora=LoraParams(adapter_dim=16)), shape(seq=512))
    assert m.weights == 2 * P == 16_060_522_496  # frozen bf16 base
    assert m.grads == m.optimizer == 0
    assert m.adapters == 16 * 41_943_040  # fp32 copy, grad, two moments per adapter parameter
    assert m.activations == L * (act_layer(512, 1) + lora_layer(512, 1)) == 3_925_868_544
    assert m.logits == logits(512, 1) == 919_339_008
    assert m.reference_model == m.kv_cache == m.backward_overlap == m.load == 0
    assert m.overhead == OVERHEAD
    assert m.total == 2 * P + 16 * 41_943_040 + 3_925_868_544 + 919_339_008 + OVERHEAD
    assert m.total < 80 * GB * 0.9  # the seed: one H100 80GB


def test_full_sft_mixed_adamw_is_16_bytes_per_param():
    m = mem(Sft(), shape())
    assert (m.weights, m.grads, m.optimizer) == (2 * P, 2 * P, 12 * P)
    assert m.weights + m.grads + m.optimizer == 16 * P == 128_484_179_968
    assert m.total > 80 * GB  # does not fit one H100, whatever the activations
    assert m.total > 141 * GB * 0.9  # nor one H200 within the 90% headroom


def test_full_sft_does_not_fit_one_h200_even_with_recompute():
    m = mem(Sft(), shape(mb=1, ckpt=True))
    assert m.total >= 16 * P + OVERHEAD > 141 * GB * 0.9


def test_8bit_adam_keeps_6_bytes_of_state():
    m = mem(Sft(optimizer="adamw_8bit"), shape())
    assert (m.weights, m.grads, m.optimizer) == (2 * P, 2 * P, 6 * P)


def test_pure_bf16_optimizer_is_8_bytes_in_all():
    m = mem(Sft(optimizer="adamw_bf16"), shape())
    assert m.weights + m.grads + m.optimizer == 8 * P


def test_fp32_run_doubles_weights_and_activations():
    m = mem(Lora(lora=LoraParams(adapter_dim=16)), shape(seq=512), precision="fp32")
    assert m.weights == 4 * P
    assert m.activations == L * (act_layer(512, 1) * 2 + lora_layer(512, 1, wbytes=4))
    assert m.logits == 1 * 512 * V * (4 + 4 + 4)  # fp32 logits (no copy), log-softmax, gradient


def test_dpo_reference_copy_vs_adapters_disabled_vs_precomputed():
    copy = mem(Dpo(), shape(seq=512))
    assert Dpo().effective_reference == "copy"
    assert copy.reference_model == 2 * P  # a frozen bf16 copy of the weights
    assert (copy.weights, copy.grads, copy.optimizer) == (2 * P, 2 * P, 12 * P)
    # chosen and rejected: twice the sequences of a micro batch
    assert copy.activations == L * (act_layer(512, 2) + norm_out(512, 2))
    assert copy.logits == logits(512, 2)

    lora = mem(Dpo(finetuning_type="lora", lora=LoraParams(adapter_dim=16)), shape(seq=512))
    assert lora.reference_model == 0  # the base with adapters disabled is the reference
    assert lora.weights == 2 * P and lora.adapters == 16 * 41_943_040
    # TRL's DPO turns dropout off, LoRA's too: the adapters read their modules' own inputs, no copies
    assert Dpo(finetuning_type="lora").lora.adapter_dropout > 0
    assert lora.activations == L * act_layer(512, 2)

    pre = mem(Dpo(reference="precomputed"), shape(seq=512))
    assert pre.reference_model == 0
    assert copy.total - pre.total == 2 * P


def test_grpo_kv_cache_and_reference_only_with_kl():
    grpo = Grpo(num_generations_per_prompt=8, max_completion_length=256, kl_beta=0.0)
    m = mem(grpo, shape(seq=256, mb=1))
    per_token = 2 * L * KV * D * 2  # K and V, every layer, bf16
    assert per_token == 131_072
    # TRL generates the whole generation batch at once: micro batch 1 x accumulation 8 completions
    assert m.kv_cache == per_token * (256 + 256) * 1 * 8
    assert m.kv_cache == 536_870_912
    assert m.reference_model == 0  # kl_beta 0 (TRL's default): no reference model
    assert m.activations == L * (act_layer(256 + 256, 1) + norm_out(256 + 256, 1))

    kl = mem(grpo.model_copy(update={"kl_beta": 0.04}), shape(seq=256, mb=1))
    assert kl.reference_model == 2 * P

    lora_kl = mem(Grpo(finetuning_type="lora", kl_beta=0.04), shape(seq=256))
    assert lora_kl.reference_model == 0  # adapters disabled serve as the reference


def test_grpo_kv_cache_splits_by_tp():
    grpo = Grpo(num_generations_per_prompt=8, max_completion_length=256)
    assert mem(grpo, shape(gpus=2, tp=2, seq=256)).kv_cache == 131_072 * 512 * 8 // 2


@pytest.mark.parametrize(("sharding", "w", "g", "o"), [
    ("none", 2 * P, 2 * P, 12 * P),
    ("zero1", 2 * P, 2 * P, 12 * P // 8),          # optimizer state / DP
    ("zero2", 2 * P, 2 * P // 8, 12 * P // 8),     # + gradients / DP
    ("fsdp", 2 * P // 8, 2 * P // 8, 12 * P // 8),  # ZeRO-3 / FSDP: everything / DP
])
def test_sharding_divides_by_dp(sharding, w, g, o):
    m = mem(Sft(), shape(gpus=8, sharding=sharding))
    assert m.weights == w and m.grads == g and m.optimizer == o
    # sharding does not split one micro batch's activations
    assert m.activations == L * (act_layer(512, 1) + norm_out(512, 1))


def test_fsdp_shards_the_dpo_reference_and_the_lora_base():
    assert mem(Dpo(), shape(gpus=8, sharding="fsdp")).reference_model == 2 * P // 8
    assert mem(Lora(), shape(gpus=4, sharding="fsdp")).weights == 2 * P // 4


def test_tensor_parallel_divides_states_and_part_of_activations():
    m = mem(Sft(), shape(gpus=2, tp=2, seq=1024))
    assert (m.weights, m.grads, m.optimizer) == (P, P, 6 * P)
    # the norms' normalized inputs stay whole on every rank, like their inputs
    assert m.activations == int(act_layer(1024, 1, t=2) * L + norm_out(1024, 1) * L)
    assert m.logits == logits(1024, 1, t=2)
    # the whole part: 8*sbh per layer is not split without sequence parallel
    assert m.activations > L * 8 * 1024 * H


def test_activation_checkpointing_keeps_layer_inputs_plus_one_layer():
    m = mem(Sft(), shape(seq=2048, ckpt=True))
    assert m.activations == L * 2 * 2048 * 1 * H + act_layer(2048, 1) + norm_out(2048, 1)


def test_eager_attention_keeps_the_score_matrix():
    # the fp32 softmax output (4 bytes a score) and its bf16 copy that the product with V keeps (2): measured
    eager = act.activation_bytes_per_layer(LLAMA8, 2048, 1, 1, False, "eager", False, 2)
    assert eager - act_layer(2048, 1) == 6 * A * 2048 * 2048
    # in fp32 the cast is a no-op: one 4-byte copy, against 4 bytes a value for everything else
    eager32 = act.activation_bytes_per_layer(LLAMA8, 2048, 1, 1, False, "eager", False, 4)
    assert eager32 - 2 * act_layer(2048, 1) == 4 * A * 2048 * 2048
    # split by heads under TP
    assert act.activation_bytes_per_layer(LLAMA8, 2048, 1, 4, False, "eager", False, 2) - act_layer(2048, 1, 4) == (
        6 * A * 2048 * 2048 / 4
    )


def test_sdpa_keeps_only_a_padding_mask_and_flash_nothing():
    flash = act.activation_bytes_per_layer(LLAMA8, 2048, 4, 1, False, "flash_attention_2", False, 2)
    assert flash == act_layer(2048, 4)
    # one sequence: no padding, no mask
    assert act.activation_bytes_per_layer(LLAMA8, 2048, 1, 1, False, "sdpa", False, 2) == act_layer(2048, 1)
    # four padded to the longest: the mask as a bf16 bias, b*s^2 per layer, whole on every TP rank
    sdpa = act.activation_bytes_per_layer(LLAMA8, 2048, 4, 2, False, "sdpa", False, 2)
    assert sdpa - act_layer(2048, 4, 2) == 4 * 2048 * 2048 * 2


def test_memory_prices_the_plans_attention():
    sh = shape(seq=4096, mb=2)
    kernels = ("flash_attention_2", "sdpa", "eager")
    by = {a: mem(Sft(), dataclasses.replace(sh, attention=a)).activations for a in kernels}
    assert by["flash_attention_2"] < by["sdpa"] < by["eager"]
    # eager keeps the scores, and, like sdpa with a padding mask, K and V repeated to the 32 query heads
    repeated_kv = 2 * (H - KV * D) * 4096 * 2 * 2
    assert by["eager"] - by["flash_attention_2"] == L * (6 * A * 4096 * 4096 * 2 + repeated_kv)
    assert by["sdpa"] - by["flash_attention_2"] == L * (2 * 4096 * 4096 * 2 + repeated_kv)


def test_sequence_parallel_splits_the_whole_part():
    sp = act.activation_bytes_per_layer(LLAMA8, 1024, 1, 4, True, "flash_attention_2", False, 2)
    assert sp == act_layer(1024, 1) / 4


def test_gemma_uses_its_own_head_width_and_four_norms():
    # Gemma 2 9B: 16 heads x 256 = 4096 query width (hidden 3584), 8 KV heads x 256, four norms a layer.
    s, b = 1024, 1
    h, i, q, kv = 3584, 14336, 16 * 256, 8 * 256
    expected = (2 * 4 + 4) * s * b * h + (4 * q + 4 * kv) * s * b + 8 * s * b * i
    assert act.activation_bytes_per_layer(GEMMA9, s, b, 1, False, "flash_attention_2", False, 2) == expected


def test_pipeline_first_stage_holds_all_layers_when_the_pipe_is_full():
    # 1F1B: the first of pp stages holds pp micro batches of its L/pp layers, i.e. L layers' worth.
    full = mem(Sft(), shape(gpus=4, pp=4, mb=1, gb=8))  # 8 micro batches >= 4 stages
    assert full.activations == L * (act_layer(512, 1) + norm_out(512, 1))
    assert full.weights == 2 * P // 4
    # fewer micro batches than stages: only those are in flight
    short = mem(Sft(), shape(gpus=4, pp=4, mb=4, gb=8))  # 2 micro batches
    assert short.activations == (L // 4) * 2 * (act_layer(512, 4) + norm_out(512, 4))


# ---------------------------------------------------------------- what the runtime keeps (measured: docs/estimator.md)

def test_lora_keeps_the_inputs_its_adapters_read():
    s, b = 512, 1
    full = act_layer(s, b)
    # dropout 0: every adapter reads its module's own input, which act_layer prices: nothing added or removed
    none = LoraParams(adapter_dim=16, adapter_dropout=0.0)
    assert act.lora_bytes_per_layer(LLAMA8, none, s, b, 1, 2, 1) == 0
    assert mem(Lora(lora=none), shape(seq=s)).activations == L * full
    # q and v only, no dropout: the gate/up input (h) and the down input (i) are kept by nobody
    qv = LoraParams(adapter_dim=16, adapter_dropout=0.0, target_modules=("q_proj", "v_proj"))
    assert act.lora_bytes_per_layer(LLAMA8, qv, s, b, 1, 2, 1) == -(H + I) * s * b * 2
    # dropout on CPU: the mask is a tensor of the input's dtype (4 bytes in fp32), not one byte
    drop = LoraParams(adapter_dim=16, adapter_dropout=0.1)
    assert act.lora_bytes_per_layer(LLAMA8, drop, s, b, 1, 4, 4) == lora_layer(s, b, wbytes=4, mask=4)


def test_padded_sdpa_and_eager_keep_k_and_v_repeated_to_the_query_heads():
    s = 1024
    assert act.kv_expansion_bytes_per_layer(LLAMA8, s, 1, 1, "sdpa", 2) == 0  # one sequence: GQA in the kernel
    assert act.kv_expansion_bytes_per_layer(LLAMA8, s, 4, 1, "flash_attention_2", 2) == 0
    assert act.kv_expansion_bytes_per_layer(LLAMA8, s, 4, 2, "sdpa", 2) == 2 * (H - KV * D) * s * 4 * 2 / 2
    assert act.kv_expansion_bytes_per_layer(LLAMA8, s, 1, 1, "eager", 2) == 2 * (H - KV * D) * s * 1 * 2


def test_full_sft_backward_overlaps_gradients_and_activations():
    # one micro batch a step: the gradients of the previous step are gone, each layer's appear as its
    # activations are freed
    m = mem(Sft(), shape(mb=4, gb=4, seq=2048))
    acts = L * (act_layer(2048, 4) + norm_out(2048, 4))
    assert m.activations == acts
    head = V * H * 2  # the lm_head's bf16 gradient, written first
    peak = max(acts + m.logits, acts + 4 * 2048 * 4 * V + head, 2 * P)
    assert m.backward_overlap == int(2 * P + acts + m.logits - peak)
    assert m.total == 2 * P + 12 * P + peak + OVERHEAD
    # with accumulation the gradients of the previous micro batch stay: no overlap
    assert mem(Sft(), shape(mb=4, gb=8, seq=2048)).backward_overlap == 0
    assert mem(Lora(), shape(mb=4, gb=4, seq=2048)).backward_overlap == 0  # no base gradients


def test_accumulating_into_a_tied_embedding_holds_three_of_its_gradients():
    # Llama 3.2 1B ties its embedding: at the end of a backward onto kept gradients, the lm_head's part (kept since
    # the start), the input's part and their sum, 3 x V x h in fp32 on CPU; measured: docs/estimator.md, 2.6b
    m = est.memory(LLAMA1, Sft(), shape(mb=1, gb=8, seq=64), "fp32", PRIOR, is_cpu=True)
    head = LLAMA1.vocab_size * LLAMA1.hidden_size * 4
    begin = max(m.activations + m.logits, m.activations + 64 * LLAMA1.vocab_size * 4 + head)
    assert m.gradient_buffers == int(max(begin, 3 * head) - (m.activations + m.logits))
    assert m.gradient_buffers > 2 * head
    assert m.backward_overlap == 0


def test_cpu_load_maps_the_checkpoint_beside_the_weights():
    cpu = est.memory(LLAMA1, Lora(), shape(seq=64), "fp32", PRIOR, is_cpu=True)
    p1 = LLAMA1.total_params
    assert cpu.load == 4 * p1 + 2 * p1  # fp32 weights filled from the bf16 file, mapped while loading
    assert cpu.total == max(cpu.training, cpu.load) + cpu.overhead == cpu.load + cpu.overhead
    assert mem(Lora(), shape()).load == 0  # a GPU's memory holds no file


def test_memory_is_priced_at_the_widest_batch():
    # each micro batch pads to its longest record: a sequence cap of 512 with records of at most 300 tokens
    assert mem(Lora(), dataclasses.replace(shape(seq=512), widest=300)) == mem(Lora(), shape(seq=300))
    assert mem(Lora(), dataclasses.replace(shape(seq=256), widest=300)) == mem(Lora(), shape(seq=256))  # capped


def test_replay_documents_pack_into_rows_of_the_batch_width():
    # 3 x 8 = 24 documents of ~10.85 tokens in rows 94 wide: ceil(260.4 / 94) = 3 rows, one more for the slack
    assert est.replay_rows(3, 8, 94, 10.85) == 4
    assert est.replay_rows(3, 8, 94, 0.0) == 24  # lengths unknown: a row each
    assert est.replay_rows(3, 1, 94, 200.0) == 3  # never more rows than documents


def test_cpu_preference_and_grpo_stages_price_trls_fused_lm_head():
    # 8 fp32 tiles of min(tokens, 4096) x min(vocab, 32768) (measured: 7.8 for DPO, 7.9 for GRPO)
    dpo = est.memory(LLAMA1, Dpo(), shape(mb=4, seq=512), "fp32", PRIOR, is_cpu=True)
    assert dpo.logits == 8 * min(2 * 4 * 512, 4096) * 32768 * 4
    grpo = Grpo(max_completion_length=256)
    # 8 completions of a 64-token prompt + 256: 2560 tokens, under the 4096-token tile
    assert est.memory(LLAMA1, grpo, shape(mb=8, seq=64), "fp32", PRIOR, is_cpu=True).logits == 8 * 2560 * 32768 * 4
    # the SFT recipe on CPU scores full logits (12 bytes a value in fp32)
    sft = est.memory(LLAMA1, Sft(), shape(mb=4, seq=512), "fp32", PRIOR, is_cpu=True)
    assert sft.logits == 4 * 512 * LLAMA1.vocab_size * 12


# ---------------------------------------------------------------- monotonicity

def test_more_tp_means_less_memory_per_gpu():
    totals = [mem(Sft(), shape(gpus=t, tp=t, seq=2048)).total for t in (1, 2, 4, 8)]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4


def test_checkpointing_means_fewer_activation_bytes():
    for seq in (256, 2048, 8192):
        keep = mem(Lora(), shape(seq=seq, mb=4)).activations
        recompute = mem(Lora(), shape(seq=seq, mb=4, ckpt=True)).activations
        assert recompute < keep


def test_larger_micro_batch_means_more_memory():
    totals = [mem(Lora(), shape(mb=m, gb=16)).total for m in (1, 2, 4, 8, 16)]
    assert totals == sorted(totals) and len(set(totals)) == 5


def test_longer_sequence_means_more_memory():
    assert mem(Sft(), shape(seq=1024)).total < mem(Sft(), shape(seq=4096)).total


# ---------------------------------------------------------------- FLOPs and time

def _stats(records: int, tokens: int) -> DataStats:
    return DataStats(source="remote", fingerprint="hand", token_estimate="declared",
                     training=SplitStats(records=records, tokens_p50=tokens, tokens_p95=tokens, tokens_max=tokens,
                                         tokens_total=records * tokens))


@pytest.mark.parametrize(("method", "per_token"), [
    (Sft(), 6 * P),                                              # 2 forward + 4 backward
    (Lora(), 4 * P),                                             # no weight-gradient GEMMs for frozen weights
    (Dpo(), 6 * P + 2 * P),                                      # + the reference's forward
    (Dpo(reference="precomputed"), 6 * P),
    (Dpo(finetuning_type="lora"), 4 * P + 2 * P),               # adapters disabled: still a forward
    (Grpo(), 6 * P),                                             # kl_beta 0: no reference
    (Grpo(kl_beta=0.04), 6 * P + 2 * P),
])
def test_flops_per_token(method, per_token):
    assert wt.flops_per_token(LLAMA8, method) == per_token


def test_recompute_adds_a_forward_pass():
    stats = _stats(100, 512)
    base = wt.time(LLAMA8, Sft(epochs=1), shape(), H100_NODE, stats, PRIOR, 0)
    ckpt = wt.time(LLAMA8, Sft(epochs=1), shape(ckpt=True), H100_NODE, stats, PRIOR, 0)
    assert base.tokens == 100 * 512
    assert base.flops == 6 * P * 100 * 512
    assert ckpt.flops == 8 * P * 100 * 512


def test_dpo_trains_chosen_and_rejected():
    t = wt.time(LLAMA8, Dpo(epochs=1), shape(), H100_NODE, _stats(100, 300), PRIOR, 0)
    assert t.tokens == 2 * 100 * 300 and t.flops == 8 * P * 2 * 100 * 300


def test_grpo_generation_tokens():
    grpo = Grpo(epochs=1, num_generations_per_prompt=8, max_completion_length=256)
    t = wt.time(LLAMA8, grpo, shape(seq=64), H100_NODE, _stats(100, 64), PRIOR, 0)
    assert t.generated_tokens == 100 * 8 * 256
    assert t.tokens == 100 * 64 * 8 + 100 * 8 * 256  # every completion is trained with its prompt
    # generation is bandwidth-bound: 2000 tokens/s for an 8B model on an H100, scaled by size
    rate = 2000 * (8e9 / P) * (3350 / 3350)
    compute = t.flops / (989e12 * 0.30)
    fixed = 3 * 60 + 0.1 * compute
    assert t.wall_hours == pytest.approx((compute + 100 * 8 * 256 / rate + fixed) / 3600)


def test_seed_wall_time_by_hand():
    """The seed: Llama 3.1 8B, LoRA r8, 400 examples of ~300 tokens, 10 epochs, one H100: under 30 min."""
    lora = Lora(lora=LoraParams(adapter_dim=8), epochs=10)
    ckpt_bytes = 16 * 20_971_520  # the adapter and its optimizer state
    assert wt.checkpoint_bytes(LLAMA8, lora) == ckpt_bytes
    t = wt.time(LLAMA8, lora, shape(seq=300), H100_NODE, _stats(400, 300), PRIOR, ckpt_bytes)
    tokens = 400 * 300 * 10
    flops = 4 * P * tokens
    compute = flops / (1 * 989e12 * 0.30)
    seconds = compute + 3 * 60 + 0.1 * compute + 10 * ckpt_bytes / (60 * GB / 60)
    assert t.tokens == tokens and t.steps == 50 * 10
    assert t.flops == pytest.approx(flops)
    assert t.wall_hours == pytest.approx(seconds / 3600)
    assert t.wall_hours < 0.5
    assert t.wall_low < t.wall_hours < t.wall_high < 0.5  # MFU 40% .. 20%
    assert t.gpu_hours(1) == (t.wall_hours, t.wall_low, t.wall_high)


def test_pipeline_bubble_prices_pp():
    stats = _stats(800, 512)
    flat = wt.time(LLAMA8, Sft(epochs=1), shape(gpus=4, tp=4, mb=1, gb=8), H100_NODE, stats, PRIOR, 0)
    piped = wt.time(LLAMA8, Sft(epochs=1), shape(gpus=4, pp=4, mb=1, gb=8), H100_NODE, stats, PRIOR, 0)
    compute = flat.flops / (4 * 989e12 * 0.30)
    # 8 micro batches through 4 stages: (8 + 4 - 1) / 8 of the compute time
    assert (piped.wall_hours - flat.wall_hours) * 3600 == pytest.approx(compute * 1.1 * (11 / 8 - 1))


def test_max_steps_caps_tokens():
    t = wt.time(LLAMA8, Sft(epochs=10, max_steps=5), shape(), H100_NODE, _stats(80, 100), PRIOR, 0)
    assert t.steps == 5 and t.tokens == 80 * 100 * 5 // 10


# ---------------------------------------------------------------- the full planner on the seed


@pytest.fixture(scope="module")
def planned():
    from planner.compose import load
    from planner.core import plan
    from planner.probe import probe
    from planner.tokens import token_counter

    def run(*overrides):
        spec, _ = load(list(overrides))
        return plan(spec, probe(spec.data, Path.cwd(), token_counter(spec)))

    return run


def test_seed_lora_fits_one_h100(planned):
    p = planned("+goal=tone", "model=llama-3.1-8b-instruct", "inventory=dgx-h100", "method=lora")
    assert p.feasible, [f.message for f in p.findings if f.severity == "error"]
    assert p.decision.method == "lora"
    assert p.layout.nodes * p.layout.gpus_per_node == 1
    m = p.estimate.memory_per_gpu_bytes
    assert m is not None and m.total <= 0.9 * 80 * GB
    assert p.estimate.trainable_params == 20_971_520
    assert p.estimate.wall_hours is not None and p.estimate.wall_hours < 0.5  # the seed: under 30 minutes
    assert p.estimate.gpu_hours == pytest.approx(p.estimate.wall_hours)  # one GPU


def test_full_sft_of_8b_does_not_fit_one_gpu(planned):
    p = planned("+goal=domain_shift", "model=llama-3.1-8b-instruct", "inventory=h200-1", "method=sft")
    assert not p.feasible
    codes = {f.code for f in p.findings if f.severity == "error"}
    assert any(c.startswith(("memory", "layout")) for c in codes), codes


def test_plans_are_deterministic(planned):
    a = planned("+goal=tone", "method=sft", "inventory=a100-40gb-4")
    b = planned("+goal=tone", "method=sft", "inventory=a100-40gb-4")
    assert a.layout == b.layout and a.estimate == b.estimate


def test_search_prefers_fewest_gpus_that_fit(planned):
    # 8B full SFT on 4 x A100 40GB: 16*P = 128 GB of states does not fit 1 or 2 GPUs at 36 GB usable.
    p = planned("+goal=tone", "model=llama-3.1-8b-instruct", "inventory=a100-40gb-4", "method=sft")
    assert p.layout.source == "search" and p.feasible
    gpus = p.layout.nodes * p.layout.gpus_per_node
    assert gpus == 4
    assert math.ceil(16 * P / (40 * GB * 0.9)) == 4
