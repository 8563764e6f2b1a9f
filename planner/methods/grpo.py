"""GRPO: sample a group of completions per prompt, score them with verifiable rewards, no pairs."""

from __future__ import annotations

from planner.methods.base import Marker, MethodRules
from schemas.method import Grpo, TrainMethod
from schemas.spec import Spec


def _grpo(method: TrainMethod) -> Grpo:
    assert isinstance(method, Grpo), method.kind
    return method


def _base_stage(method: TrainMethod, spec: Spec) -> bool:
    """method.cold_start_sft: an SFT stage on prompt -> answer first, for a base that never samples a right one."""
    return _grpo(method).cold_start_sft


def _rows(method: TrainMethod, v: Marker) -> list[tuple[str, str]]:
    m = _grpo(method)
    return [
        (
            "GRPO",
            f"{v('num_generations_per_prompt')} generations per prompt, completion length "
            f"{v('max_completion_length')} tokens, temperature {v('temperature')}, KL beta {v('kl_beta')}",
        ),
        (
            "rewards",
            f"{v('rewards')} (generation: {v('generation_backend')}"
            + (f", cold start SFT {v('cold_start_sft')})" if m.cold_start_sft else ")"),
        ),
    ]


RULES = MethodRules(
    kind="grpo",
    label="GRPO",
    formats=("prompt_answer",),
    base_stage=_base_stage,
    base_stage_note="includes the cold-start SFT stage on the same prompts and reference answers",
    completion_tokens=lambda m: _grpo(m).max_completion_length,
    generations_per_prompt=lambda m: _grpo(m).num_generations_per_prompt,
    # a KL term needs the reference's log-probs: a frozen copy, unless LoRA disables the adapters for it
    reference_copy=lambda m: _grpo(m).kl_beta > 0 and m.finetuning_type != "lora",
    reference_forward=lambda m: _grpo(m).kl_beta > 0,
    recipe_rows=_rows,
)
