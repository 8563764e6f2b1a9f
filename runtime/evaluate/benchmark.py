"""The general benchmark of the forgetting check: ``builtin:<name>`` (the shipped multiple-choice file) scored by
log-likelihood as runtime.tiny.benchmark_accuracy does; any other name is an lm-evaluation-harness task, run when
``lm_eval`` is importable and reported as missing otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime import metrics as metrics_mod
from runtime.context import RunContext, StageFailed
from runtime.evaluate.scoring import continuation_logprobs
from schemas.method import TRAIN_KINDS
from schemas.plan import Evaluation


def multiple_choice_correct(ctx: RunContext, model: Any, tok: Any, items: list[dict], max_len: int) -> list[int]:
    """1 or 0 per item: each choice scored by the summed log-likelihood of " <choice>" after "<question> Answer:"."""
    pairs = [(f"{item['question']} Answer:", f" {choice}") for item in items for choice in item["choices"]]
    return metrics_mod.choice_correct(items, continuation_logprobs(ctx, model, tok, pairs, max_len))


def general(
    ctx: RunContext, ev: Evaluation, model: Any, tok: Any, max_len: int, *, tuned: bool
) -> tuple[float | None, int, str | None, list[int] | None]:
    """(score, items scored, note, right/wrong per item in the benchmark's order or None) of the forgetting check's
    benchmark; the gate pairs the per-item results of the baseline and the tuned model."""
    plan = ctx.plan
    bench, cap = ev.general_benchmark, ev.max_examples
    if tuned and plan.decision.method not in TRAIN_KINDS:
        return None, 0, f"not run: a {plan.decision.method} plan does not change the weights", None
    if ev.general_benchmark_path is not None:
        path = Path(ev.general_benchmark_path)
        if not path.is_file():
            raise StageFailed(f"eval.general_benchmark {bench!r}: no {path}; use builtin:general or an lm_eval task")
        items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        items = items[:cap] if cap else items
        correct = multiple_choice_correct(ctx, model, tok, items, max_len)
        return sum(correct) / len(correct), len(items), None, correct
    return _lm_eval(model, tok, bench, cap)


def _lm_eval(
    model: Any, tok: Any, task: str, limit: int | None
) -> tuple[float | None, int, str | None, list[int] | None]:
    """An lm-evaluation-harness task on the loaded model, when lm_eval is installed; per-item results from its
    logged samples (in doc_id order) when they carry the metric as 0/1."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return (
            None,
            0,
            (
                f"lm_eval is not installed, so {task!r} was not run: pip install lm-eval, "
                "or set eval.general_benchmark=builtin:general"
            ),
            None,
        )
    try:
        results = simple_evaluate(
            model=HFLM(pretrained=model, tokenizer=tok, batch_size=8), tasks=[task], limit=limit, log_samples=True
        )
    except Exception as exc:  # an optional harness: report why, let the gate decide
        return None, 0, f"lm_eval task {task!r} failed: {type(exc).__name__}: {exc}", None
    found = (results or {}).get("results", {}).get(task, {})
    for key in ("acc,none", "acc_norm,none", "exact_match,strict-match", "exact_match,none"):
        if isinstance(found.get(key), (int, float)):
            n = (results.get("n-samples", {}).get(task, {}) or {}).get("effective", 0)
            name = key.split(",")[0]
            return float(found[key]), int(n), f"lm_eval {name}", _lm_eval_items(results, task, name)
    return None, 0, f"lm_eval task {task!r} reported no accuracy metric (got {sorted(found)})", None


def _lm_eval_items(results: dict, task: str, metric: str) -> list[int] | None:
    """The 0/1 per document of lm_eval's logged samples, in doc_id order; None when they do not carry it."""
    samples = (results.get("samples") or {}).get(task) or []
    values = [(s.get("doc_id"), s.get(metric)) for s in samples if isinstance(s, dict)]
    if not values or any(v not in (0, 1, 0.0, 1.0, True, False) for _, v in values):
        return None
    return [int(v or 0) for _, v in sorted(values, key=lambda dv: dv[0] if isinstance(dv[0], int) else 0)]
