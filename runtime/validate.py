"""validate_data: the full data report; fails the stage on errors.

Counts per split, invalid lines as file:line, duplicates, empty fields, preference pairs with
chosen == rejected, unparsable reference answers, and a token-length histogram (the model's own
tokenizer) against the sequence length: what would be truncated.
"""

from __future__ import annotations

from runtime.context import RunContext, StageFailed
from runtime.data import data_root, read_split
from runtime.status import write_json_atomic

BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
TEXT = {
    "prompt_completion": (("prompt",), ("completion",)),
    "messages": (("messages",),),
    "preference": (("prompt",), ("chosen", "chosen_response")),
    "prompt_answer": (("prompt",), ("answer", "reference_answer")),
    "documents": (("text",),),
}


def run(ctx: RunContext) -> None:
    from planner.probe import probe

    plan = ctx.plan
    if plan.data_stats.source == "remote":
        raise StageFailed("remote data cannot be validated here: download it and recompile with data.path=<folder>")
    root = data_root(plan)
    stats = probe(plan.spec.data.model_copy(update={"path": str(root)}), root.parent,
                  plan.spec.knowledge.estimator.chars_per_token)
    report: dict = {"root": str(root), "format": plan.spec.data.format, "splits": {}, "errors": [], "warnings": []}
    for split in ("training", "validation"):
        s = getattr(stats, split)
        if s is None:
            continue
        report["splits"][split] = {
            "files": list(s.files), "records": s.records, "invalid": [str(b) for b in s.invalid],
            "invalid_total": s.invalid_total, "duplicates": s.duplicates, "empty": s.empty,
            "same_chosen_rejected": s.same_chosen_rejected, "unparsable_answers": s.unparsable_answers,
        }
        if s.invalid_total:
            report["errors"].append(f"{s.invalid_total} invalid line(s) in {split}/: "
                                    + "; ".join(str(b) for b in s.invalid[:10]))
        for key, what in (("duplicates", "duplicate records"), ("empty", "records with empty fields"),
                          ("same_chosen_rejected", "pairs with chosen == rejected"),
                          ("unparsable_answers", "reference answers that do not parse")):
            if getattr(s, key):
                report["warnings"].append(f"{getattr(s, key)} {what} in {split}/")
    if stats.root_files:
        report["errors"].append(f"files in the dataset root are not read: {', '.join(stats.root_files)}")
    if stats.training.records == 0:
        report["errors"].append("no usable training records")
    if plan.decision.pipeline:
        report["tokens"] = _token_report(ctx, root)
        if report["tokens"]["truncated"]:
            report["warnings"].append(f"{report['tokens']['truncated']} training record(s) exceed the sequence "
                                      f"length {report['tokens']['seq_length']} and will be truncated")
    write_json_atomic(ctx.path(ctx.stage.outputs["report"]), report)
    for split, s in report["splits"].items():
        ctx.log(f"{split}: {s['records']} records, {s['invalid_total']} invalid, {s['duplicates']} duplicates")
    if "tokens" in report:
        t = report["tokens"]
        ctx.log(f"tokens: p50 {t['p50']}, p95 {t['p95']}, max {t['max']} against seq {t['seq_length']}; "
                f"{t['truncated']} truncated")
    for w in report["warnings"]:
        ctx.log(f"warning: {w}")
    if report["errors"]:
        raise StageFailed("; ".join(report["errors"]))


def _token_report(ctx: RunContext, root) -> dict:
    from runtime.models import load_tokenizer, render_example

    plan = ctx.plan
    tok = load_tokenizer(plan)
    seq = plan.layout.seq_length or 0
    cap = plan.spec.method.max_seq_length if getattr(plan.spec.method, "max_seq_length", None) else None
    config = plan.spec.model.find_config(plan.decision.config_urn) if plan.decision.config_urn else None
    limit = cap or (config.max_seq_length if config else seq) or seq
    lengths = []
    for record in read_split(root, "training"):
        fields = TEXT[plan.spec.data.format]
        parts = [next((str(record[a]) for a in alts if a in record), "") for alts in fields]
        if len(parts) >= 2:
            head, tail = render_example(plan, parts[0], parts[1])
            text = head + tail
        else:
            text = parts[0]
        lengths.append(len(tok(text, add_special_tokens=True)["input_ids"]))
    lengths.sort()
    histogram = {}
    for n in lengths:
        bucket = next((b for b in BUCKETS if n <= b), BUCKETS[-1])
        histogram[f"<={bucket}"] = histogram.get(f"<={bucket}", 0) + 1

    def pct(q: float) -> int:
        return lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else 0

    return {"seq_length": limit, "p50": pct(0.5), "p95": pct(0.95), "max": lengths[-1] if lengths else 0,
            "histogram": histogram, "truncated": sum(n > limit for n in lengths)}
