"""validate_data: the full data report; fails the stage on errors.

Counts per split (records, usable, unique: schemas.scan.SplitScan, as the planner counted them), invalid
lines as file:line, empty fields, duplicates and near duplicates, preference pairs with chosen == rejected,
unparsable reference answers, and a token-length histogram (the model's own tokenizer) against the sequence
length: what would be truncated.
"""

from __future__ import annotations

from pathlib import Path

from runtime import tracking
from runtime.context import RunContext, StageFailed
from runtime.data import Mixed, Source, mix, objects, read_source, stage_data
from runtime.status import write_json_atomic
from schemas.records import VALIDATION_FORMAT, UnreadableFile, data_files
from schemas.scan import SplitScan

BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def run(ctx: RunContext) -> None:
    plan = ctx.plan
    data = stage_data(ctx)  # the planned files, unchanged since planning
    cpt = plan.spec.knowledge.estimator.chars_per_token
    mixed: Mixed | None = None
    report: dict = {"root": data.root, "format": data.format, "splits": {}, "errors": [], "warnings": []}
    if data.mixture is None:
        report["splits"] = _scan(data, "", cpt, report)
        if not report["splits"].get("training", {}).get("usable"):
            report["errors"].append("no usable training records")
    else:  # each dataset on its own, then the mix as the trainers get it
        report["sources"] = {}
        for part in data.mixture.parts:
            report["sources"][part.key] = {"format": part.format, "splits": _scan(part, f"{part.key}: ", cpt, report)}
            if not report["sources"][part.key]["splits"].get("training", {}).get("usable"):
                report["errors"].append(f"{part.key}: no usable training records")
        if not report["errors"]:
            mixed = mix(data.mixture, data.holdout_fraction)
            report["warnings"] += [n.removeprefix("warning: ") for n in mixed.notes if n.startswith("warning: ")]
            report["mixture"] = {
                "drawn": mixed.drawn,
                "training": len(mixed.train),
                "validation": len(mixed.validation),
            }
    # the records the trainers read: the one dataset's training split, or the mix
    training = read_source(data, "training") if data.mixture is None else mixed.train if mixed else []
    tokens = [
        _token_report(ctx, stage.name, stage.method.max_seq_length, training)
        for stage in plan.training_stages
        if stage.method is not None and not stage.method.sequence_packing and training
    ]
    if tokens:
        report["tokens"] = tokens[-1]
        report["tokens_by_stage"] = tokens
    for t in tokens:
        if t["truncated"]:
            report["warnings"].append(
                f"{t['truncated']} training record(s) exceed the {t['stage']} stage's "
                f"max_seq_length {t['seq_length']} and will be cut"
            )
    write_json_atomic(ctx.path(ctx.stage.outputs["report"]), report)
    tracking.log(ctx, data_metrics(report))
    for where, splits in [("", report["splits"])] + [
        (f"{k}: ", v["splits"]) for k, v in report.get("sources", {}).items()
    ]:
        for split, s in splits.items():
            ctx.log(
                f"{where}{split}: {s['records']} records ({s['unique']} usable and unique), {s['invalid_total']} "
                f"invalid, {s['empty']} empty, {s['duplicates']} duplicates"
            )
    if "mixture" in report:
        drawn = ", ".join(f"{k} {n:,}" for k, n in report["mixture"]["drawn"].items())
        ctx.log(f"mixture: {report['mixture']['training']:,} training records ({drawn})")
    for t in tokens:
        ctx.log(
            f"tokens ({t['stage']}): p50 {t['p50']}, p95 {t['p95']}, max {t['max']} against max_seq_length "
            f"{t['seq_length']}; {t['truncated']} truncated"
        )
    for w in report["warnings"]:
        ctx.log(f"warning: {w}")
    if report["errors"]:
        raise StageFailed("; ".join(report["errors"]))


def _scan(src: Source, prefix: str, chars_per_token: float, report: dict) -> dict:
    """The full count of one dataset's splits (SplitScan, as the planner counted), its problems added to the
    report's errors and warnings (prefixed with the part's key in a mixture)."""
    out: dict = {}
    trained: SplitScan | None = None  # the training split's scan: validation records that repeat one
    if src.root is not None:
        root_files = [p.name for p in data_files(Path(src.root))]
        if root_files:
            report["errors"].append(f"{prefix}files in the dataset root are not read: {', '.join(root_files)}")
    for split in ("training", "validation"):
        scan = SplitScan(
            VALIDATION_FORMAT.get(src.format, src.format) if split == "validation" else src.format, chars_per_token
        )
        if src.hub is not None:
            name = src.hub.training_split if split == "training" else src.hub.validation_split
            if name is None:
                continue
            scan.add_rows(name, objects(src, split))
        else:
            assert src.root is not None
            root = Path(src.root)
            files = data_files(root / split)
            if split == "validation" and not files:
                continue
            for path in files:
                try:
                    scan.add(path.relative_to(root).as_posix(), path.read_bytes())
                except UnreadableFile as exc:
                    raise StageFailed(f"{exc}: install pyarrow, or fix the file and re-plan") from None
        s = scan.stats(trained)
        trained = scan
        out[split] = {
            "files": list(s.files),
            "records": s.records,
            "usable": s.usable,
            "unique": s.unique,
            "invalid": [str(b) for b in s.invalid],
            "invalid_total": s.invalid_total,
            "empty": s.empty,
            "duplicates": s.duplicates,
            "near_duplicates": s.near_duplicates,
            "near_duplicate_rate": s.near_duplicate_rate,
            "in_training": s.in_training,
            "same_chosen_rejected": s.same_chosen_rejected,
            "unparsable_answers": s.unparsable_answers,
        }
        if s.invalid_total:
            report["errors"].append(
                f"{prefix}{s.invalid_total} invalid line(s) in {split}/: " + "; ".join(str(b) for b in s.invalid[:10])
            )
        for count, what, where in (
            (s.empty, "records with empty fields", s.empty_at),
            (s.duplicates, "duplicate records", s.duplicate_at),
            (s.near_duplicates, "near duplicates (case, punctuation or spacing aside)", s.near_duplicate_at),
            (s.in_training, "records that repeat a training record", s.in_training_at),
            (s.same_chosen_rejected, "pairs with chosen == rejected", s.same_chosen_rejected_at),
            (s.unparsable_answers, "reference answers that do not parse", ()),
        ):
            if count:
                shown = f": {'; '.join(str(b) for b in where)}{' ...' if count > len(where) else ''}" if where else ""
                report["warnings"].append(f"{prefix}{count} {what} in {split}/{shown}")
    return out


def data_metrics(report: dict) -> dict[str, float]:
    """The report's counts as tracking metrics: data/<split>/<count> (a mixture: data/mixture[i]/<split>/<count>
    per dataset and data/mixture/<split> for the mix), and the training token lengths."""
    counts = ("records", "usable", "unique", "invalid_total", "empty", "duplicates", "near_duplicates", "in_training")
    out = {f"data/{split}/{key}": s.get(key) for split, s in report["splits"].items() for key in counts}
    for name, source in (report.get("sources") or {}).items():  # a mixture: each dataset (data.mixture[i]), the mix
        part = name.removeprefix("data.")
        out.update(
            {f"data/{part}/{split}/{key}": s.get(key) for split, s in source["splits"].items() for key in counts}
        )
    mixture = report.get("mixture") or {}
    out.update({f"data/mixture/{split}": mixture.get(split) for split in ("training", "validation")})
    tokens = report.get("tokens") or {}
    out.update({f"data/tokens/{key}": tokens.get(key) for key in ("p50", "p95", "max", "truncated")})
    return tracking.numbers(out)


def _token_report(ctx: RunContext, stage: str, seq: int | None, records: list[dict]) -> dict:
    """Real token lengths of the training records as `stage` formats them (its prompt format), against its
    max_seq_length: the count the planner's data-truncated finding estimated."""
    from runtime.data import row_length, truncated_rows
    from runtime.models import check_chat, load_tokenizer, prompt_format
    from runtime.recipes.sft import rows

    plan = ctx.plan
    tok = load_tokenizer(plan)
    fmt = prompt_format(plan, stage)
    check_chat(fmt, tok, plan.spec.model.name)
    data = plan.stage(stage).data
    assert data is not None
    training, _ = rows(data, fmt, records)
    lengths = sorted(row_length(tok, row) for row in training)
    histogram: dict[str, int] = {}
    for n in lengths:
        bucket = next((b for b in BUCKETS if n <= b), BUCKETS[-1])
        histogram[f"<={bucket}"] = histogram.get(f"<={bucket}", 0) + 1

    def pct(q: float) -> int:
        return lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else 0

    return {
        "stage": stage,
        "seq_length": seq,
        "p50": pct(0.5),
        "p95": pct(0.95),
        "max": lengths[-1] if lengths else 0,
        "histogram": histogram,
        "truncated": truncated_rows(tok, training, seq),
    }
