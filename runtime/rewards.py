"""Verifiable reward functions for GRPO, keyed by the names a plan's method.rewards lists.

Each reward is a pure function ``(completion, reference) -> float`` (no torch, no I/O), so it is
unit-tested on fixed strings. ``trl_reward(name)`` wraps one in the signature TRL's GRPOTrainer
calls: ``f(prompts, completions, completion_ids, **dataset_columns) -> list[float]``; the reference
comes from the dataset's ``answer`` column (runtime.recipes.grpo normalises NeMo's ``reference_answer`` to it).

Names:
  numeric_match  1.0 when the number after the last 'Answer:' (else the last number) equals the
                 reference's number (runtime.metrics.parse_number, the same rule as pass_at_1).
  format         1.0 when the completion has 'Answer:' followed by a number.
  valid_json     1.0 when the completion (stripped) parses as JSON.
  regex:PATTERN  1.0 when re.search(PATTERN, completion) matches (e.g. ``regex:^\\s*Answer:``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from runtime.metrics import parse_number, pass_at_1_one

Reward = Callable[[str, "str | None"], float]

_ANSWER_NUMBER = re.compile(r"answer:\s*-?\$?\d", re.IGNORECASE)


def numeric_match(completion: str, reference: str | None) -> float:
    if reference is None or parse_number(str(reference)) is None:
        return 0.0
    return pass_at_1_one(completion, str(reference))


def answer_format(completion: str, reference: str | None = None) -> float:
    return float(bool(_ANSWER_NUMBER.search(completion)))


def valid_json(completion: str, reference: str | None = None) -> float:
    text = completion.strip()
    if not text:
        return 0.0
    try:
        json.loads(text)
    except ValueError:
        return 0.0
    return 1.0


REWARDS: dict[str, Reward] = {
    "numeric_match": numeric_match,
    "format": answer_format,
    "valid_json": valid_json,
}
NEEDS_REFERENCE = frozenset({"numeric_match"})


def _regex(pattern: str) -> Reward:
    compiled = re.compile(pattern)

    def regex(completion: str, reference: str | None = None) -> float:
        return float(bool(compiled.search(completion)))

    return regex


def known() -> list[str]:
    return [*sorted(REWARDS), "regex:PATTERN"]


def get(name: str) -> Reward:
    """The reward registered under `name`; KeyError (listing the known names) for an unknown one."""
    if name in REWARDS:
        return REWARDS[name]
    if name.startswith("regex:"):
        try:
            return _regex(name.removeprefix("regex:"))
        except re.error as exc:
            raise KeyError(f"reward {name!r}: bad regular expression: {exc}") from None
    raise KeyError(f"unknown reward {name!r}; known: {', '.join(known())}")


def trl_reward(name: str) -> Callable[..., list[float]]:
    """`name`'s reward in GRPOTrainer's calling convention; its __name__ is the metric key
    (GRPOTrainer logs rewards/<name>/mean and rewards/<name>/std)."""
    reward = get(name)

    def func(prompts=None, completions=None, completion_ids=None, answer=None, **_) -> list[float]:
        completions = completions or []
        if answer is None and name in NEEDS_REFERENCE:
            raise ValueError(f"reward {name} needs the dataset's answer column, and the trainer passed none")
        references = answer if answer is not None else [None] * len(completions)
        return [reward(_text(c), r) for c, r in zip(completions, references, strict=True)]

    func.__name__ = func.__qualname__ = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "reward"
    return func


def _text(completion) -> str:
    """A completion as text: a string, or a conversational completion's last message content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)
