"""How the plan reports lay text out: columns, wrapping at WIDTH, sizes and hours, the layout on one line.

Shared by the report itself (planner.report) and its recipe section (planner.report_recipe).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from schemas.plan import Layout, Plan

GB = 10**9
WIDTH = 100  # the text report's columns


def gb(n: int) -> str:
    return f"{n / GB:.1f} GB"


def hours(value: float | None, rng: tuple[float, float] | None) -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}"
    if rng:
        text += f" ({rng[0]:.2f}-{rng[1]:.2f})"
    return text


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None, indent: str = "  ") -> list[str]:
    """Aligned columns; a last column that runs past WIDTH wraps under itself."""
    allrows = ([header] if header else []) + list(rows)
    widths = [max(len(r[i]) for r in allrows) for i in range(len(allrows[0]))]
    start = len(indent) + sum(w + 2 for w in widths[:-1])
    hang = " " * (start if start <= WIDTH // 2 else len(indent) + 4)
    out = []
    for n, row in enumerate(allrows):
        line = (indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))).rstrip()
        out += wrap(line, hang)
        if header and n == 0:
            out.append(indent + "  ".join("-" * w for w in widths))
    return out


def wrap(line: str, hang: str | None = None) -> list[str]:
    """One line, wrapped at WIDTH; continuation lines start with `hang` (default: its indent + 2)."""
    if len(line) <= WIDTH:
        return [line]
    lead = line[: len(line) - len(line.lstrip())]
    return textwrap.wrap(
        line[len(lead) :],
        WIDTH,
        initial_indent=lead,
        subsequent_indent=lead + "  " if hang is None else hang,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [line]


def layout_line(plan: Plan) -> str:
    return layout_text(plan.layout, full=True)


def layout_text(lay: Layout | None, full: bool) -> str:
    """The layout on one line: `full` for the plan's (batch split, how it was found), else a stage's short one
    (the recipe shows the batch split beside it)."""
    if lay is None or lay.source == "none":
        return "no training"
    where = (
        f"{lay.nodes} node{'s' if lay.nodes > 1 else ''} x "
        f"{lay.gpus_per_node} GPU{'s' if lay.gpus_per_node > 1 else ''}"
    )
    if full:
        parts = [
            where,
            f"TP {lay.tensor_parallel}",
            f"PP {lay.pipeline_parallel}",
            f"DP {lay.data_parallel}",
            f"micro batch {lay.micro_batch} x accumulation {lay.grad_accum} = global {lay.global_batch}",
        ]
    else:
        parts = [where, f"TP {lay.tensor_parallel} PP {lay.pipeline_parallel} DP {lay.data_parallel}"]
    parts += [
        f"sharding {lay.sharding}",
        f"checkpointing {'on' if lay.activation_checkpointing else 'off'}",
        lay.precision,
        f"attention {lay.attention_implementation}",
    ]
    if not full:  # the recipe's max_seq_length row has the sequence length
        return ", ".join(parts)
    parts.append(f"seq {lay.seq_length}")
    src = {"pinned": "pinned", "search": "searched"}[lay.source]
    return ", ".join(parts) + f" [{src}]"


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")
