"""Checks of the data: where the files are, unusable lines, the validation split, the format the method
trains on, the floors of every training stage, and quality."""

from __future__ import annotations

from collections.abc import Iterator

from planner.checks.base import Group, finding
from planner.draft import Draft
from planner.ladder import LABELS
from planner.methods import METHODS
from schemas.data import BadLine
from schemas.plan import Finding, Layout
from schemas.records import FIELDS, shape

check = Group()


@check("data-root-files")
def _root_files(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.stats.root_files:
        files = ", ".join(d.stats.root_files[:5])
        yield finding(
            "error",
            "data-root-files",
            "data.path",
            f"{files} sit in the dataset root, where nothing is read: only training/ and validation/ are "
            "(the classic 'empty dataset')",
            "move the training files into training/ and the validation files into validation/",
        )


@check("data-empty")
def _empty(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.stats.training
    if t.examples == 0 and not d.stats.root_files:
        why = f" ({t.records:,} records, every one with an empty field or chosen == rejected)" if t.records else ""
        yield finding(
            "error",
            "data-empty",
            "data.path",
            f"no usable records under training/ in {d.spec.data.path}{why}",
            "add .jsonl (one JSON record per line), .csv or .parquet files under training/",
        )


@check("data-invalid-lines")
def _invalid(d: Draft, layout: Layout) -> Iterator[Finding]:
    for split in ("training", "validation"):
        stats = getattr(d.stats, split)
        if stats is None or not stats.invalid_total:
            continue
        yield finding(
            "error",
            "data-invalid-lines",
            "data.path",
            f"{stats.invalid_total} unusable line(s) in {split}/: {_where(stats.invalid, stats.invalid_total)}",
            f"fix or remove those lines; {d.spec.data.format} records need "
            + _needs(
                d.spec.data.format if split == "training" or d.spec.data.format != "documents" else "prompt_completion"
            ),
        )


def _where(lines: tuple[BadLine, ...], total: int, shown: int = 5) -> str:
    """The first few locations as file:line: reason, and how many more there are."""
    more = f" (and {total - shown:,} more)" if total > shown else ""
    return "; ".join(str(b) for b in lines[:shown]) + more


def _needs(fmt: str) -> str:
    return ", ".join("/".join(alts) for alts in FIELDS[fmt])


@check("data-validation-split")
def _validation(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.stats.validation is None and d.stats.source != "remote":
        lints = d.spec.knowledge.lints
        n = d.stats.training.records
        yield finding(
            "info",
            "data-validation-split",
            "data.path",
            f"no validation/ folder: {lints.holdout_fraction:.0%} of training ({lints.holdout(n)} of {n}) is "
            "held out for validation",
            "add validation/*.jsonl to keep all training examples",
        )
    elif d.stats.source == "remote" and d.spec.data.declared and d.spec.data.declared.validation is None:
        yield finding(
            "info",
            "data-validation-split",
            "data.declared.validation",
            f"no validation split declared: {d.spec.knowledge.lints.holdout_fraction:.0%} of training is held out",
            "",
        )


@check("data-format-method")
def _format_method(d: Draft, layout: Layout) -> Iterator[Finding]:
    if d.train is None:
        return
    fmt = d.spec.data.format
    needed = METHODS[d.method_kind].formats
    if shape(fmt) not in needed:
        yield finding(
            "error",
            "data-format-method",
            "data.format",
            f"{LABELS[d.method_kind]} trains on {' or '.join(needed)} records; the data is {fmt}",
            "use data in that format, or a method that fits the data (method=auto chooses)",
        )


@check("data-floor")
def _floor(d: Draft, layout: Layout) -> Iterator[Finding]:
    """Every training stage of the pipeline against its method's floors (the SFT base of DPO too)."""
    n, t = d.stats.examples, d.stats.training
    dropped = [
        f"{count:,} {what}"
        for count, what in (
            (t.empty, "empty"),
            (t.same_chosen_rejected, "with chosen == rejected"),
            (t.duplicates, "duplicates"),
        )
        if count
    ]
    counted = f" (usable and unique, of {t.records:,} records: {', '.join(dropped)})" if dropped else ""
    for stage in d.stages:
        floor = d.spec.knowledge.floors[stage.recipe.method.kind]
        unit = floor.unit.removesuffix("s") if n == 1 else floor.unit
        label = LABELS[stage.kind]
        where = "" if stage is d.main else f" (the {label} stage before {LABELS[d.method_kind]})"
        batch = stage.layout.global_batch if stage.layout is not None else 0
        hard = max(floor.hard, batch)
        if n < hard:
            why = (
                f"fewer than one global batch ({batch})"
                if hard == batch and batch > floor.hard
                else f"below the hard floor of {floor.hard:,}"
            )
            yield finding(
                "error",
                "data-floor",
                "data",
                f"{n:,} {unit}{counted}: {why}; a {label} run{where} cannot learn anything from so little",
                f"collect at least {floor.soft:,} {floor.unit} ({hard:,} at the very least)",
            )
        elif n < floor.soft:
            yield finding(
                "warning",
                "data-floor",
                "data",
                f"{n:,} {unit}{counted}: below the {floor.soft:,} {label}{where} needs to be reliable; expect a "
                "noisy, partial effect and check the gate closely",
                f"collect {floor.soft:,}+ {floor.unit} for a production run",
            )


@check("data-quality")
def _quality(d: Draft, layout: Layout) -> Iterator[Finding]:
    """Empty records, duplicates, near duplicates, pairs without signal, unparsable answers: warnings with where
    they are (the floors count what is left; data-floor makes too little an error)."""
    for split in ("training", "validation"):
        s = getattr(d.stats, split)
        if s is None:
            continue
        if s.empty:
            yield finding(
                "warning",
                "data-quality",
                "data.path",
                f"{s.empty:,} record(s) in {split}/ have empty text fields, not counted: {_where(s.empty_at, s.empty)}",
                "drop or fill them; empty completions teach the model to stop early",
            )
        if s.duplicates:
            yield finding(
                "warning",
                "data-quality",
                "data.path",
                f"{s.duplicates:,} duplicate record(s) in {split}/ ({s.examples:,} unique of {s.usable or 0:,} "
                f"usable), counted once: {_where(s.duplicate_at, s.duplicates)}",
                "deduplicate: duplicates overweight those examples and leak into validation",
            )
        if s.near_duplicates:
            yield finding(
                "warning",
                "data-quality",
                "data.path",
                f"{s.near_duplicate_rate:.1%} of the unique records in {split}/ ({s.near_duplicates:,}) repeat "
                f"another but for case, punctuation or spacing: {_where(s.near_duplicate_at, s.near_duplicates)}",
                "deduplicate them too: they weigh like duplicates",
            )
        if s.same_chosen_rejected:
            yield finding(
                "warning",
                "data-quality",
                "data.path",
                f"{s.same_chosen_rejected:,} preference pair(s) in {split}/ have chosen == rejected: no signal, not "
                f"counted: {_where(s.same_chosen_rejected_at, s.same_chosen_rejected)}",
                "drop those pairs",
            )
        if s.unparsable_answers:
            yield finding(
                "warning",
                "data-quality",
                "data.path",
                f"{s.unparsable_answers} reference answer(s) in {split}/ do not parse as numbers",
                "fix them, or use a reward other than numeric_match",
            )
