"""baseline_eval and eval: the task metric on the validation split and the general benchmark.

``baseline(ctx)`` measures the base model before any training: a prompting plan zero-shot, a RAG
plan without retrieval. ``tuned(ctx)`` measures what the plan produced: the base with the trained
adapter (``artifacts.adapter_dir``) or the trained full model (``artifacts.model_dir``); for a
prompting plan the prompt with ``few_shot`` examples from training (the BM25-nearest ones); for a
RAG plan the ``top_k`` BM25-retrieved chunks of training/ prepended to the question. Both sides
use the same prompt template (``runtime.models.render_prompt``) and the same examples.

Task metric: ``goal.metric`` on the validation split (or the seeded 10% hold-out), greedy
generation in left-padded batches, capped by ``eval.max_examples``; preference data is scored by
the mean log-prob per token of the chosen against the rejected completion instead of generating
(length-normalised: a summed log-prob favours the shorter answer whatever it says).
General score (forgetting): ``builtin:<name>`` is the shipped multiple-choice benchmark scored
by log-likelihood (as ``runtime.tiny.benchmark_accuracy``); any other name is an lm-evaluation-
harness task, run when ``lm_eval`` is importable and reported as missing otherwise.

Writes ``stage.outputs["scores"]`` (JSON, with the per-item results the gate pairs: ``task_items`` and
``general_items``) and ``predictions.jsonl`` next to it. This module is the stage;
runtime.evaluate.prompts builds what the model is asked, runtime.evaluate.scoring generates and scores, and
runtime.evaluate.benchmark runs the general benchmark.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

from runtime import metrics as metrics_mod
from runtime import tracking
from runtime.context import RunContext, StageFailed
from runtime.data import splits, stage_data
from runtime.evaluate.benchmark import general
from runtime.evaluate.prompts import Item, items_of, prepare_prompts
from runtime.evaluate.scoring import context_length, continuation_logprobs, generate
from runtime.models import check_chat, prompt_format, special_tokens, threads_for
from runtime.status import write_json_atomic
from schemas.method import TRAIN_KINDS
from schemas.plan import Evaluation, PromptFormat

N_EXAMPLES = 5


def baseline(ctx: RunContext) -> dict:
    return _evaluate(ctx, tuned=False)


def tuned(ctx: RunContext) -> dict:
    return _evaluate(ctx, tuned=True)


def evaluation(ctx: RunContext) -> Evaluation:
    """What this evaluation stage runs, as the plan resolved it."""
    if ctx.stage.evaluation is None:
        raise StageFailed(f"plan {ctx.plan.id}: stage {ctx.stage.name} records no evaluation: re-plan it")
    return ctx.stage.evaluation


def _evaluate(ctx: RunContext, *, tuned: bool) -> dict:
    import torch

    plan = ctx.plan
    t0 = time.perf_counter()
    torch.manual_seed(0)
    ev, data = evaluation(ctx), stage_data(ctx)
    metric = metrics_mod.get(ev.metric)
    train, validation = splits(data)
    items = items_of(data, ev, validation)
    if not items:
        if plan.decision.method == "rag":
            raise StageFailed(
                "no questions to evaluate: a RAG plan reads its documents from training/ and its "
                "questions from validation/ ({prompt, completion} records): add validation/"
            )
        raise StageFailed(
            "no validation records to evaluate: add validation/ (or more training records for the "
            "10% hold-out) with the fields of data.format " + data.format
        )
    model, tok, what = _load(ctx, tuned=tuned)
    fmt = prompt_format(plan, ctx.stage.name)
    check_chat(fmt, tok, plan.spec.model.name)
    strategy = prepare_prompts(ev, fmt, tok, items, train, tuned=tuned)
    t_load = time.perf_counter()
    with threads_for(model):
        rows, task_score = _task(ctx, model, tok, items, metric, ev, fmt)
        t_task = time.perf_counter()
        general_score, n_general, note, general_items = general(
            ctx, ev, model, tok, context_length(model, tok), tuned=tuned
        )
    t_general = time.perf_counter()
    scores = {
        "stage": ctx.stage.name,
        "role": "tuned" if tuned else "baseline",
        "plan_id": plan.id,
        "method": plan.decision.method,
        "model": what,
        "prompting": strategy,
        "metric": metric.name,
        "task_score": round(float(task_score), 6),
        "n_examples": len(items),
        "general_benchmark": ev.general_benchmark,
        "general_score": None if general_score is None else round(float(general_score), 6),
        "n_general": n_general,
        "general_note": note,
        # per item, in order, so the gate can pair baseline and tuned (runtime.gate.stats)
        "general_items": general_items,
        "task_items": [round(float(r["score"]), 6) for r in rows],
        "examples": rows[:N_EXAMPLES],
        "seconds": round(t_general - t0, 3),
        "timings": {
            "load": round(t_load - t0, 3),
            "task": round(t_task - t_load, 3),
            "general": round(t_general - t_task, 3),
        },
    }
    out = ctx.path(ctx.stage.outputs.get("scores", f"run/{ctx.stage.name}/scores.json"))
    write_json_atomic(out, scores)
    # the same tags for both sides, so a tracker overlays the baseline and the tuned model
    tracking.log(ctx, {f"scores/{k}": scores[k] for k in ("task_score", "general_score", "n_examples", "n_general")})
    with (out.parent / "predictions.jsonl").open("w", encoding="utf-8") as fh:
        for row, item in zip(rows, items, strict=True):
            fh.write(json.dumps({**row, "input": item.text}, sort_keys=True) + "\n")
    general_text = "n/a" if general_score is None else f"{general_score:.3f} on {n_general}"
    ctx.log(
        f"{scores['role']}: {metric.name} {task_score:.4f} on {len(items)} examples ({strategy}); "
        f"general {general_text}{f' ({note})' if note else ''}; {scores['seconds']:.1f}s"
    )
    return scores


def _task(
    ctx: RunContext,
    model: Any,
    tok: Any,
    items: list[Item],
    metric: metrics_mod.Metric,
    ev: Evaluation,
    fmt: PromptFormat,
) -> tuple[list[dict], float]:
    """Per-example rows and the corpus score of the task metric."""
    max_len = context_length(model, tok)
    special = special_tokens(fmt)
    if metric.pairs == "logprob":
        # per token: a summed log-prob prefers whichever answer is shorter (a curt reply beats a helpful one)
        chosen = continuation_logprobs(
            ctx, model, tok, [(i.text, i.reference) for i in items], max_len, per_token=True, special=special
        )
        rejected = continuation_logprobs(
            ctx, model, tok, [(i.text, i.rejected) for i in items], max_len, per_token=True, special=special
        )
        rows = [
            {
                "prompt": i.prompt,
                "output": f"log p per token: chosen {c:.3f}, rejected {r:.3f}",
                "reference": i.reference,
                "rejected": i.rejected,
                "score": metric.example(c, r),
            }
            for i, c, r in zip(items, chosen, rejected, strict=True)
        ]
        return rows, metric(chosen, rejected)
    outputs = generate(ctx, model, tok, [i.text for i in items], ev.max_new_tokens, max_len, special=special)
    rows = [
        {"prompt": i.prompt, "output": o, "reference": i.reference, "score": metric.example(o, i.reference)}
        for i, o in zip(items, outputs, strict=True)
    ]
    return rows, metric(outputs, [i.reference for i in items])


def _load(ctx: RunContext, *, tuned: bool) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) of what this stage evaluates."""
    from runtime.models import load_model, load_tokenizer

    plan = ctx.plan
    external_base = evaluation(ctx).sft_base  # a DPO plan that starts from the team's SFT model
    base = external_base
    what = f"base {plan.spec.model.name}" + (f" (SFT base {external_base})" if external_base else "")
    adapter = None
    if tuned and plan.decision.method in TRAIN_KINDS:
        if plan.artifacts.adapter_dir:
            adapter_dir = ctx.path(plan.artifacts.adapter_dir)
            if not (adapter_dir / "adapter_config.json").is_file():
                raise StageFailed(f"no trained adapter at {adapter_dir}: run the train stage first")
            if plan.artifacts.sft_base_dir:
                base = str(_need_dir(ctx.path(plan.artifacts.sft_base_dir), "SFT base", "train_sft"))
            adapter = str(adapter_dir)
            what = f"{plan.spec.model.name} + adapter {plan.artifacts.adapter_dir}"
        elif plan.artifacts.model_dir:
            base = str(_need_dir(ctx.path(plan.artifacts.model_dir), "trained model", "train"))
            what = f"trained model {plan.artifacts.model_dir}"
    tok_source = base if base is not None and (Path(base) / "tokenizer_config.json").is_file() else external_base
    tok = load_tokenizer(plan, tok_source)
    with warnings.catch_warnings():
        # peft 0.21 reads model.is_gradient_checkpointing, which transformers 5 deprecates
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        model = load_model(plan, base=base, adapter=adapter)
    return model, tok, what


def _need_dir(path: Path, what: str, stage: str) -> Path:
    if not (path / "config.json").is_file():
        raise StageFailed(f"no {what} at {path}: run the {stage} stage first")
    return path
