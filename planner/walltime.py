"""FLOPs, tokens per second and wall time for one layout: compute at an MFU prior plus fixed costs. Pure arithmetic.

Every formula and its source is in docs/estimator.md. Units: FLOPs, hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.estimator import ADAPTER_BYTES, GB, Shape, is_lora, lora_trainable, pipeline_bubble
from planner.methods import rules
from schemas.calibration import DeviceCalibration
from schemas.data import DataStats
from schemas.inventory import Inventory
from schemas.knowledge import Estimator
from schemas.method import TrainMethod
from schemas.model import Architecture


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
    base = 4 * p if is_lora(method) else 6 * p
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
    if is_lora(method):
        return ADAPTER_BYTES * lora_trainable(arch, method.lora)
    return 16 * arch.total_params
