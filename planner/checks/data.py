"""Checks of the data: where the files are, unusable lines, the validation split, the format the method
trains on, the floors of every training stage, and quality."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from planner.checks.base import Group, finding
from planner.draft import Draft
from planner.ladder import LABELS
from planner.methods import METHODS
from schemas.data import BadLine, DataStats, Declared
from schemas.plan import Finding, Layout
from schemas.records import FIELDS, shape

check = Group()


@dataclass(frozen=True)
class Dataset:
    """One dataset the checks look at: the data, or a part of its mixture (key data.mixture[i])."""

    key: str
    path: str
    format: str
    stats: DataStats
    declared: Declared | None


def datasets(d: Draft) -> list[Dataset]:
    """The data, or each dataset of its mixture: where the problems of the files are."""
    data = d.spec.data
    if d.stats.mixture:
        return [
            Dataset(p.key, p.path, p.format, p.stats, part.declared)
            for p, part in zip(d.stats.mixture, data.mixture, strict=True)
        ]
    return [Dataset("data", data.path or "", data.format, d.stats, data.declared)]


@check("data-root-files")
def _root_files(d: Draft, layout: Layout) -> Iterator[Finding]:
    for ds in datasets(d):
        if ds.stats.root_files:
            files = ", ".join(ds.stats.root_files[:5])
            yield finding(
                "error",
                "data-root-files",
                f"{ds.key}.path",
                f"{files} sit in the dataset root, where nothing is read: only training/ and validation/ are "
                "(the classic 'empty dataset')",
                "move the training files into training/ and the validation files into validation/",
            )


@check("data-empty")
def _empty(d: Draft, layout: Layout) -> Iterator[Finding]:
    for ds in datasets(d):
        t = ds.stats.training
        if t.examples == 0 and not ds.stats.root_files:
            why = f" ({t.records:,} records, every one with an empty field or chosen == rejected)" if t.records else ""
            yield finding(
                "error",
                "data-empty",
                f"{ds.key}.path",
                f"no usable records under training/ in {ds.path}{why}",
                "add .jsonl (one JSON record per line), .csv or .parquet files under training/",
            )


@check("data-invalid-lines")
def _invalid(d: Draft, layout: Layout) -> Iterator[Finding]:
    for ds in datasets(d):
        for split in ("training", "validation"):
            stats = getattr(ds.stats, split)
            if stats is None or not stats.invalid_total:
                continue
            fmt = ds.format if split == "training" or ds.format != "documents" else "prompt_completion"
            sampled = (
                f" (in the first {ds.stats.hub.sampled:,} read)"
                if ds.stats.counts == "sampled" and ds.stats.hub
                else ""
            )
            yield finding(
                "error",
                "data-invalid-lines",
                f"{ds.key}.path",
                f"{stats.invalid_total} unusable line(s) in {split}/{sampled}: "
                + _where(stats.invalid, stats.invalid_total),
                f"fix or remove those lines; {ds.format} records need " + _needs(fmt),
            )


def _where(lines: tuple[BadLine, ...], total: int, shown: int = 5) -> str:
    """The first few locations as file:line: reason, and how many more there are."""
    more = f" (and {total - shown:,} more)" if total > shown else ""
    return "; ".join(str(b) for b in lines[:shown]) + more


def _needs(fmt: str) -> str:
    return ", ".join("/".join(alts) for alts in FIELDS[fmt])


@check("data-validation-split")
def _validation(d: Draft, layout: Layout) -> Iterator[Finding]:
    lints = d.spec.knowledge.lints
    for ds in datasets(d):
        s = ds.stats
        if s.counts == "declared":
            if ds.declared is not None and ds.declared.validation is None:
                yield finding(
                    "info",
                    "data-validation-split",
                    f"{ds.key}.declared.validation",
                    f"no validation split declared: {lints.holdout_fraction:.0%} of training is held out",
                    "",
                )
        elif s.hub is not None and s.hub.validation_split is None:
            n = s.training.rows
            yield finding(
                "info",
                "data-validation-split",
                f"{ds.key}.splits.validation",
                f"{ds.path} has no validation split: {lints.holdout_fraction:.0%} of training ({lints.holdout(n)} of "
                f"{n}) is held out for validation",
                f"set {ds.key}.splits.validation to one of its splits to keep all training examples",
            )
        elif s.validation is None and s.source in ("local", "builtin"):
            n = s.training.records
            yield finding(
                "info",
                "data-validation-split",
                f"{ds.key}.path",
                f"no validation/ folder: {lints.holdout_fraction:.0%} of training ({lints.holdout(n)} of {n}) is "
                "held out for validation",
                "add validation/*.jsonl to keep all training examples",
            )


@check("data-counts")
def _counts(d: Draft, layout: Layout) -> Iterator[Finding]:
    """Counts that were not measured: declared ones stand in, or a Hub dataset's counts with a sample's quality."""
    for ds in datasets(d):
        s = ds.stats
        v = f", {s.validation.records:,} validation" if s.validation is not None else ""
        if s.counts == "declared":
            tokens = (
                f", p95 {s.training.tokens_p95:,} tokens" if s.token_estimate == "declared" else ", no token lengths"
            )
            yield finding(
                "info",
                "data-counts",
                f"{ds.key}.declared",
                f"{ds.path}: counts declared, not measured ({s.training.records:,} training{v}{tokens}): the floors, "
                "steps, time and cost rest on them, and no line of the data was checked",
                f"plan where the data can be read (drop {ds.key}.declared for hf:// data) to measure them"
                if ds.path.startswith("hf://")
                else "",
            )
        elif s.counts == "sampled" and s.hub is not None:
            yield finding(
                "info",
                "data-counts",
                f"{ds.key}.path",
                f"{ds.path}: {s.training.records:,} training{v} records as the dataset states them; quality and token "
                f"lengths measured on the first {s.hub.sampled:,} records of each split, duplicates not counted",
                "the validate_data stage reads every record",
            )


@check("data-mixture")
def _mixture(d: Draft, layout: Layout) -> Iterator[Finding]:
    """What each dataset gives the mix: all of it, a sample (downsampled) or repeats (upsampled)."""
    if not d.stats.mixture:
        return
    parts = []
    for p in d.stats.mixture:
        how = (
            "all"
            if p.drawn == p.pool
            else f"{p.drawn / p.pool:.2f}x, repeats"
            if p.drawn > p.pool
            else "a sample, downsampled"
            if p.pool
            else "none"
        )
        parts.append(f"{p.key} {p.path} {p.drawn:,} of {p.pool:,} ({p.share:.0%}, {how})")
    yield finding(
        "info",
        "data-mixture",
        "data.mixture",
        f"{d.stats.training.records:,} training records mixed ({d.spec.data.stopping_strategy}): " + "; ".join(parts),
        "change data.mixture[i].weight or data.stopping_strategy (all_exhausted repeats the smaller shares instead of "
        "leaving records out)"
        if any(p.drawn != p.pool for p in d.stats.mixture)
        else "",
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
    for ds, split in ((ds, split) for ds in datasets(d) for split in ("training", "validation")):
        s = getattr(ds.stats, split)
        if s is None:
            continue
        path = f"{ds.key}.path"
        if s.empty:
            yield finding(
                "warning",
                "data-quality",
                path,
                f"{s.empty:,} record(s) in {split}/ have empty text fields, not counted: {_where(s.empty_at, s.empty)}",
                "drop or fill them; empty completions teach the model to stop early",
            )
        if s.duplicates:
            yield finding(
                "warning",
                "data-quality",
                path,
                f"{s.duplicates:,} duplicate record(s) in {split}/ ({s.examples:,} unique of {s.usable or 0:,} "
                f"usable), counted once: {_where(s.duplicate_at, s.duplicates)}",
                "deduplicate: duplicates overweight those examples and leak into validation",
            )
        if s.near_duplicates:
            yield finding(
                "warning",
                "data-quality",
                path,
                f"{s.near_duplicate_rate:.1%} of the unique records in {split}/ ({s.near_duplicates:,}) repeat "
                f"another but for case, punctuation or spacing: {_where(s.near_duplicate_at, s.near_duplicates)}",
                "deduplicate them too: they weigh like duplicates",
            )
        if s.in_training:
            # a Hub dataset is compared on the rows the probe read (its first ones when it is sampled)
            of = (
                "the validation records read"
                if ds.stats.hub is not None
                else f"the {s.examples:,} unique validation records"
            )
            yield finding(
                "warning",
                "data-quality",
                path,
                f"{s.in_training:,} of {of} repeat a training record (case, punctuation and spacing aside): the eval "
                "loss, early stopping and the gate's scores on them measure recall of training data, not "
                f"generalization: {_where(s.in_training_at, s.in_training)}",
                "remove them from the validation split (or from training)",
            )
        if s.same_chosen_rejected:
            yield finding(
                "warning",
                "data-quality",
                path,
                f"{s.same_chosen_rejected:,} preference pair(s) in {split}/ have chosen == rejected: no signal, not "
                f"counted: {_where(s.same_chosen_rejected_at, s.same_chosen_rejected)}",
                "drop those pairs",
            )
        if s.unparsable_answers:
            yield finding(
                "warning",
                "data-quality",
                path,
                f"{s.unparsable_answers} reference answer(s) in {split}/ do not parse as numbers",
                "fix them, or use a reward other than numeric_match",
            )
