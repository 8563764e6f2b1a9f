"""A plan's headline numbers and how the plan diff writes values: shared by the comparison's one-line
summaries (planner.diff_compare) and the reports (planner.diff_report).
"""

from __future__ import annotations

import json
from typing import Any

from planner.diff_records import ABSENT, Change
from schemas.plan import Plan

GB = 10**9
SHORT = 100  # a record or list shown longer than this is cut (report=json has it whole)
SERVING = {"none": "none", "hot_swap": "hot-swap", "new_deployment": "new deployment"}


def gpus(plan: Plan) -> int:
    return 0 if plan.layout.source == "none" else plan.layout.gpus


def gpu_hours(plan: Plan) -> float:
    return plan.estimate.gpu_hours or 0.0


def memory_ratio(plan: Plan) -> float | None:
    mem = plan.estimate.memory_per_gpu_bytes
    return mem.total / mem.capacity if mem is not None and mem.capacity else None


def serving(plan: Plan) -> str:
    """hot-swap, new deployment, or none (no training): the plan's decision.serving, as reports show it."""
    return SERVING[plan.decision.serving.kind]


def brief(plan: Plan) -> str:
    return f"method {plan.decision.method}, GPUs {gpus(plan)}, GPU-hours {fmt_hours(gpu_hours(plan))}, {feasible(plan)}"


def feasible(plan: Plan) -> str:
    n = len(plan.errors)
    return "feasible" if plan.feasible else f"not feasible ({n} error{'s' if n != 1 else ''})"


def fmt_hours(value: float | None) -> str:
    if not value:
        return "0"
    if value < 1:
        return f"{value:.2g}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def recipe_value(value: Any) -> str:
    """A hyperparameter as the diff shows it: 0.0001, 5e-06, true, all-linear, (absent)."""
    if value is ABSENT:
        return "(absent)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(recipe_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return recipe_brief(value) if "kind" in value else json.dumps(value, separators=(", ", ": "))
    return str(value)


def fmt_gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def ratio(old: float, new: float) -> str:
    if old <= 0:
        return "new" if new > 0 else "same"
    if new <= 0:
        return "none"
    r = new / old
    if r >= 2:
        return f"+{r:.1f}x" if r < 10 else f"+{r:.0f}x"
    if r <= 0.5:
        return f"-{1 / r:.1f}x" if r > 0.1 else f"-{1 / r:.0f}x"
    return f"{(r - 1) * 100:+.0f}%"


def files_differ(n: int) -> str:
    return "1 file differs" if n == 1 else f"{n} files differ"


def recipe_brief(method: dict[str, Any]) -> str:
    """A training stage's method in a few words (a stage added or removed)."""
    words = [str(method.get("kind", "?"))]
    if method.get("finetuning_type"):
        words[0] += f" ({method['finetuning_type']})"
    for key in ("learning_rate", "epochs", "batch_size"):
        if key in method:
            value = method[key]
            words.append(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}")
    return ", ".join(words)


def fmt_value(value: Any, area: str = "", key: str = "") -> str:
    if value is ABSENT or value is None or isinstance(value, bool):
        return recipe_value(value)
    if area == "memory" and isinstance(value, int):
        return fmt_gb(value)
    if area == "estimate" and isinstance(value, (int, float)):
        if "hours" in key:
            return fmt_hours(value)
        if key == "cost_usd":
            return f"${value:,.2f}"
        if key == "flops":
            return f"{value:.2e}"
        return f"{value:,}"
    if area == "estimate" and key.endswith("_range") and isinstance(value, list):
        return f"{fmt_hours(value[0])}-{fmt_hours(value[1])}"
    if area == "stages" and isinstance(value, dict) and "argv" in value:  # a stage on one side only
        return f"after {', '.join(value.get('after') or []) or '-'}: {' '.join(value['argv'])}"
    if isinstance(value, str):
        return value if value.strip() and value == value.strip() else json.dumps(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        shown = json.dumps(value, separators=(", ", ": "))
        return shown if len(shown) <= SHORT or area == "estimate" else shown[: SHORT - 1] + "…"
    return str(value)


def recipe_change(c: Change) -> tuple[str, str, str, str]:
    """(stage, key, base, head) of a recipe change; key '' is the whole stage, added or removed."""
    stage, _, key = c.key.partition(".")
    if not key:
        return (
            stage,
            "",
            "" if c.base is ABSENT else recipe_brief(c.base),
            "" if c.head is ABSENT else recipe_brief(c.head),
        )

    def shown(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and key == "memory_per_gpu":
            return fmt_gb(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "gpu_hours":
            return fmt_hours(value)
        return recipe_value(value)

    return stage, key, shown(c.base), shown(c.head)
