"""What the choice means: a cheaper rung the ladder prefers, the baseline to measure first, how the result
is served (and whether the serving target accepts the adapter's rank)."""

from __future__ import annotations

from collections.abc import Iterator

from planner.checks.base import Group, finding
from planner.draft import Draft
from planner.ladder import LABELS, order
from schemas.method import TRAIN_KINDS
from schemas.plan import Finding, Layout

check = Group()


@check("ladder-cheaper-rung")
def _cheaper(d: Draft, layout: Layout) -> Iterator[Finding]:
    requested = d.spec.method.kind
    chosen = d.ladder.choice
    if requested == "auto" or requested == chosen:
        return
    ranks = order(d.spec.knowledge)
    if requested in ranks and chosen in ranks and ranks.index(chosen) < ranks.index(requested):
        yield finding(
            "warning",
            "ladder-cheaper-rung",
            "method",
            f"{LABELS[chosen]} should be tried before {LABELS[requested]}: "
            + next((r.reason for r in d.ladder.rungs if r.method == chosen), ""),
            f"try method={chosen} (or method=auto) first",
        )


@check("baseline-first")
def _baseline(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.spec.goal.baseline_score is None:
        yield finding(
            "info",
            "baseline-first",
            "goal.baseline_score",
            "no measured baseline: the plan starts with a baseline evaluation; move past prompting only on "
            "measured eval degradation",
            "record the measured score in goal.baseline_score",
        )


@check("consequence-serving")
def _serving(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None:
        return
    hot = d.spec.goal.serving.hot_swap
    if d.train.finetuning_type == "lora" and d.method_kind in TRAIN_KINDS and "sft" not in d.pipeline:
        yield finding(
            "info",
            "consequence-serving",
            "method",
            "a LoRA adapter hot-swaps into a running multi-LoRA server: no new deployment",
            "",
        )
    else:
        yield finding(
            "warning" if hot else "info",
            "consequence-serving",
            "method",
            "all weights change: the result needs its own serving deployment"
            + (" but the goal requires hot-swap into the running server" if hot else ""),
            "use LoRA to hot-swap" if hot else "",
        )


@check("serving-lora-rank")
def _lora_rank(d: Draft, layout: Layout) -> Iterator[Finding]:
    serving = d.spec.goal.serving
    t = d.train
    if not serving.hot_swap or t is None or t.finetuning_type != "lora":
        return
    rank = t.lora.adapter_dim
    if rank > serving.max_lora_rank:
        yield finding(
            "error",
            "serving-lora-rank",
            "method.lora.adapter_dim",
            f"adapter_dim {rank} is above the serving target's maximum LoRA rank {serving.max_lora_rank} "
            "(goal.serving.max_lora_rank): the running server refuses the adapter, so it cannot hot-swap",
            f"use method.lora.adapter_dim={_highest_power_of_two(serving.max_lora_rank)}, or start the server "
            "with a larger --max-lora-rank and set goal.serving.max_lora_rank to match",
        )


def _highest_power_of_two(limit: int) -> int:
    return 1 << (limit.bit_length() - 1)
