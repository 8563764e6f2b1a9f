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

Writes ``stage.outputs["scores"]`` (JSON) and ``predictions.jsonl`` next to it.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from runtime import metrics as metrics_mod
from runtime.context import Cancelled, RunContext, StageFailed
from runtime.data import field, messages_text, splits, stage_data
from runtime.models import (
    chat_turns,
    check_chat,
    prompt_format,
    render_example,
    render_prompt,
    special_tokens,
    threads_for,
)
from runtime.status import write_json_atomic
from schemas.method import TRAIN_KINDS
from schemas.plan import Evaluation, Plan, PromptFormat, StageData

BATCH_TOKENS = 1 << 16  # padded tokens per batch (prompt + new tokens): sizes batches to the sequences
MAX_BATCH = 64
N_EXAMPLES = 5
FEW_SHOT_SEPARATOR = "\n\n"


@dataclass
class Item:
    """One validation record as the evaluation sees it."""

    prompt: str  # the raw prompt (before retrieval / few-shot / template)
    reference: str
    rejected: str = ""  # preference data only
    text: str = ""  # what the model is given: template applied, context / examples included
    turns: list[dict] | None = None  # messages data: the conversation before the answer


# ----------------------------------------------------------------------------- stage entry points


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
    items = _items(data, ev, validation)
    if not items:
        if plan.decision.method == "rag":
            raise StageFailed("no questions to evaluate: a RAG plan reads its documents from training/ and its "
                              "questions from validation/ ({prompt, completion} records): add validation/")
        raise StageFailed("no validation records to evaluate: add validation/ (or more training records for the "
                          "10% hold-out) with the fields of data.format " + data.format)
    model, tok, what = _load(ctx, tuned=tuned)
    fmt = prompt_format(plan, ctx.stage.name)
    check_chat(fmt, tok, plan.spec.model.name)
    strategy = _prepare_prompts(plan, ev, fmt, tok, items, train, tuned=tuned)
    t_load = time.perf_counter()
    with threads_for(model):
        rows, task_score = _task(ctx, model, tok, items, metric, ev, fmt)
        t_task = time.perf_counter()
        general, n_general, note = _general(ctx, model, tok, _context_length(model, tok), tuned=tuned)
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
        "general_score": None if general is None else round(float(general), 6),
        "n_general": n_general,
        "general_note": note,
        "examples": rows[:N_EXAMPLES],
        "seconds": round(t_general - t0, 3),
        "timings": {"load": round(t_load - t0, 3), "task": round(t_task - t_load, 3),
                    "general": round(t_general - t_task, 3)},
    }
    out = ctx.path(ctx.stage.outputs.get("scores", f"run/{ctx.stage.name}/scores.json"))
    write_json_atomic(out, scores)
    with (out.parent / "predictions.jsonl").open("w", encoding="utf-8") as fh:
        for row, item in zip(rows, items):
            fh.write(json.dumps({**row, "input": item.text}, sort_keys=True) + "\n")
    general_text = "n/a" if general is None else f"{general:.3f} on {n_general}"
    ctx.log(f"{scores['role']}: {metric.name} {task_score:.4f} on {len(items)} examples ({strategy}); "
            f"general {general_text}{f' ({note})' if note else ''}; {scores['seconds']:.1f}s")
    return scores


def _task(ctx: RunContext, model, tok, items: list[Item], metric, ev: Evaluation,
          fmt: PromptFormat) -> tuple[list[dict], float]:
    """Per-example rows and the corpus score of the task metric."""
    max_len = _context_length(model, tok)
    special = special_tokens(fmt)
    if metric.pairs == "logprob":
        # per token: a summed log-prob prefers whichever answer is shorter (a curt reply beats a helpful one)
        chosen = _continuation_logprobs(ctx, model, tok, [(i.text, i.reference) for i in items], max_len,
                                        per_token=True, special=special)
        rejected = _continuation_logprobs(ctx, model, tok, [(i.text, i.rejected) for i in items], max_len,
                                          per_token=True, special=special)
        rows = [{"prompt": i.prompt, "output": f"log p per token: chosen {c:.3f}, rejected {r:.3f}",
                 "reference": i.reference, "rejected": i.rejected, "score": metric.example(c, r)}
                for i, c, r in zip(items, chosen, rejected)]
        return rows, metric(chosen, rejected)
    outputs = _generate(ctx, model, tok, [i.text for i in items], ev.max_new_tokens, max_len, special=special)
    rows = [{"prompt": i.prompt, "output": o, "reference": i.reference, "score": metric.example(o, i.reference)}
            for i, o in zip(items, outputs)]
    return rows, metric(outputs, [i.reference for i in items])


# ----------------------------------------------------------------------------- data -> prompts


def _items(data: StageData, ev: Evaluation, records: list[dict]) -> list[Item]:
    fmt = data.format
    items = []
    for r in records:
        if fmt == "preference":
            item = Item(field(r, "prompt"), field(r, "chosen", "chosen_response"),
                        rejected=field(r, "rejected", "rejected_response"))
        elif fmt == "messages":
            msgs = r.get("messages") or []
            if not msgs or not isinstance(msgs, list) or not isinstance(msgs[-1], dict):
                continue
            turns = [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
                     for m in msgs[:-1] if isinstance(m, dict)]
            item = Item(messages_text(turns), str(msgs[-1].get("content", "")), turns=turns)
        else:  # prompt_completion, prompt_answer, and the questions of a RAG (documents) plan
            item = Item(field(r, "prompt", "question"), field(r, "completion", "answer", "reference_answer"))
        if item.prompt and item.reference:
            items.append(item)
    cap = ev.max_examples
    return items[:cap] if cap else items


def _prepare_prompts(plan: Plan, ev: Evaluation, fmt: PromptFormat, tok, items: list[Item], train: list[dict], *,
                     tuned: bool) -> str:
    """Fill item.text in the stage's prompt format (the one training used); returns how the prompt was built."""
    from runtime.retrieval import BM25, chunk

    def prompt(item: Item, text: str | None = None) -> str:
        chat = fmt.kind == "chat_template" and item.turns and text is None
        return render_prompt(fmt, item.turns if chat else (text or item.prompt), tok)

    if ev.strategy == "few_shot" and tuned:
        shots = [(field(r, "prompt"), field(r, "completion", "answer")) for r in train]
        shots = [s for s in shots if s[0] and s[1]]
        index = BM25([p for p, _ in shots])
        k = ev.few_shot
        for item in items:
            chosen = index.top(item.prompt, k) if k else []
            chosen += [i for i in range(len(shots)) if i not in chosen][: k - len(chosen)]
            if fmt.kind == "chat_template":  # the examples as earlier turns of the conversation
                turns = [{"role": "system", "content": ev.system_prompt}] if ev.system_prompt else []
                for i in chosen:
                    turns += [{"role": "user", "content": shots[i][0]}, {"role": "assistant", "content": shots[i][1]}]
                item.text = render_prompt(fmt, turns + chat_turns(item.turns or item.prompt), tok)
                continue
            examples = ["".join(render_example(fmt, *shots[i])) for i in chosen]
            head = (ev.system_prompt + FEW_SHOT_SEPARATOR) if ev.system_prompt else ""
            item.text = head + "".join(e + FEW_SHOT_SEPARATOR for e in examples) + prompt(item)
        system = ", system prompt" if ev.system_prompt else ""
        return f"{k}-shot (BM25-nearest training examples{system})"
    if ev.strategy == "rag" and tuned:
        chunks = []
        for r in train:
            text, title = field(r, "text", "content"), field(r, "title")
            if title and title not in text:
                text = f"{title}: {text}"
            chunks.extend(chunk(text, ev.chunk_tokens))
        if not chunks:
            raise StageFailed("no documents to retrieve from: training/ needs records with a 'text' field")
        index = BM25(chunks)
        for item in items:
            context = "\n".join(chunks[i] for i in index.top(item.prompt, ev.top_k))
            item.text = prompt(item, f"Context:\n{context}\n\n{item.prompt}" if context else item.prompt)
        if ev.retriever != "bm25":
            return f"BM25 top-{ev.top_k} (retriever {ev.retriever!r} not implemented here: BM25 used)"
        return f"BM25 top-{ev.top_k} of {len(chunks)} chunks"
    for item in items:
        item.text = prompt(item)
    if ev.strategy in ("few_shot", "zero_shot"):
        return "zero-shot"
    if ev.strategy == "rag":
        return "no retrieval"
    return "chat template" if fmt.kind == "chat_template" else "prompt template"


# ----------------------------------------------------------------------------- models


def _load(ctx: RunContext, *, tuned: bool):
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


def _context_length(model, tok) -> int:
    config = getattr(model, "config", None)
    n = getattr(config, "max_position_embeddings", None) or getattr(tok, "model_max_length", None) or 2048
    return int(min(n, 1 << 20))


def _device(model):
    return next(model.parameters()).device


def _check_stop(ctx: RunContext) -> None:
    if ctx.stop_requested:
        raise Cancelled("SIGTERM during evaluation")


def _encode(tok, text: str, special: bool = True) -> list[int]:
    """Token ids of a rendered prompt; a chat template writes its own special tokens (special=False)."""
    return list(tok(text, add_special_tokens=special)["input_ids"])


def _fit(ids: list[int], budget: int, bos: int | None) -> list[int]:
    """Keep the last `budget` tokens (the question end), and BOS if the sequence started with it."""
    if len(ids) <= budget:
        return ids
    if bos is not None and ids and ids[0] == bos:
        return [bos] + ids[len(ids) - budget + 1:]
    return ids[len(ids) - budget:]


def _generate(ctx: RunContext, model, tok, prompts: list[str], max_new_tokens: int, max_len: int,
              special: bool = True) -> list[str]:
    """Greedy generation in left-padded batches (prompts sorted by length to pad little)."""
    import torch
    from transformers import GenerationConfig

    budget = max(1, max_len - max_new_tokens)
    encoded = [_fit(_encode(tok, p, special), budget, tok.bos_token_id) for p in prompts]
    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None \
        else tok.eos_token_id
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=tok.pad_token_id, eos_token_id=eos, bos_token_id=tok.bos_token_id)
    device = _device(model)
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    outputs: list[str] = [""] * len(encoded)
    for batch in _batches(order, lambda i: len(encoded[i]) + max_new_tokens):
        _check_stop(ctx)
        width = max(len(encoded[i]) for i in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(batch):
            seq = encoded[i]
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config)
        texts = tok.batch_decode(out[:, width:], skip_special_tokens=True)
        for i, text in zip(batch, texts):
            outputs[i] = text.strip()
    return outputs


def _batches(order: list[int], length) -> list[list[int]]:
    """Consecutive groups of `order` (sorted by length) within BATCH_TOKENS padded tokens and MAX_BATCH rows."""
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) >= MAX_BATCH or (len(current) + 1) * max(length(j) for j in (*current, i))
                        > BATCH_TOKENS):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def _split_ids(tok, head: str, continuation: str, special: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of head and continuation such that head + continuation tokenises as their join
    (as runtime.tiny.benchmark_accuracy does); tokenised apart when the join merges across them."""
    full = _encode(tok, head + continuation, special)
    head_ids = _encode(tok, head, special)
    if full[:len(head_ids)] == head_ids and len(full) > len(head_ids):
        return head_ids, full[len(head_ids):]
    return head_ids, list(tok(continuation, add_special_tokens=False)["input_ids"])


def _continuation_logprobs(ctx: RunContext, model, tok, pairs: list[tuple[str, str]], max_len: int,
                           per_token: bool = False, special: bool = True) -> list[float]:
    """Summed log-prob of each continuation given its head (the mean per token with ``per_token``), in
    right-padded batches."""
    import torch

    seqs: list[list[int]] = []
    starts: list[int] = []
    for head, cont in pairs:
        h, c = _split_ids(tok, head, cont, special)
        c = c[: max_len - 1]
        h = _fit(h, max(1, max_len - len(c)), tok.bos_token_id)
        seqs.append(h + c)
        starts.append(len(h))
    device = _device(model)
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
    result = [0.0] * len(seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for batch in _batches(order, lambda i: len(seqs[i])):
        _check_stop(ctx)
        width = max(len(seqs[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(batch):
            ids[row, :len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
            mask[row, :len(seqs[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            # position t predicts token t + 1: log p = logit[target] - logsumexp(logits)
            targets = ids[:, 1:]
            picked = logits[:, :-1].gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            logp = picked - torch.logsumexp(logits[:, :-1], dim=-1)
        for row, i in enumerate(batch):
            s, n = starts[i], len(seqs[i])
            total = float(logp[row, s - 1:n - 1].sum().item())
            result[i] = total / max(1, n - s) if per_token else total
    return result


# ----------------------------------------------------------------------------- general benchmark


def multiple_choice_accuracy(ctx: RunContext, model, tok, items: list[dict], max_len: int) -> float:
    """Each choice scored by the summed log-likelihood of " <choice>" after "<question> Answer:"."""
    pairs = [(f"{item['question']} Answer:", f" {choice}") for item in items for choice in item["choices"]]
    return metrics_mod.choice_accuracy(items, _continuation_logprobs(ctx, model, tok, pairs, max_len))


def _general(ctx: RunContext, model, tok, max_len: int, *, tuned: bool) -> tuple[float | None, int, str | None]:
    """(score, items scored, note) of the forgetting check's benchmark."""
    plan, ev = ctx.plan, evaluation(ctx)
    bench, cap = ev.general_benchmark, ev.max_examples
    if tuned and plan.decision.method not in TRAIN_KINDS:
        return None, 0, f"not run: a {plan.decision.method} plan does not change the weights"
    if ev.general_benchmark_path is not None:
        path = Path(ev.general_benchmark_path)
        if not path.is_file():
            raise StageFailed(f"eval.general_benchmark {bench!r}: no {path}; use builtin:general or an lm_eval task")
        items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        items = items[:cap] if cap else items
        return multiple_choice_accuracy(ctx, model, tok, items, max_len), len(items), None
    return _lm_eval(model, tok, bench, cap)


def _lm_eval(model, tok, task: str, limit: int | None) -> tuple[float | None, int, str | None]:
    """An lm-evaluation-harness task on the loaded model, when lm_eval is installed."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return None, 0, (f"lm_eval is not installed, so {task!r} was not run: pip install lm-eval, "
                         "or set eval.general_benchmark=builtin:general")
    try:
        results = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tok, batch_size=8), tasks=[task],
                                  limit=limit, log_samples=False)
    except Exception as exc:  # an optional harness: report why, let the gate decide
        return None, 0, f"lm_eval task {task!r} failed: {type(exc).__name__}: {exc}"
    found = (results or {}).get("results", {}).get(task, {})
    for key in ("acc,none", "acc_norm,none", "exact_match,strict-match", "exact_match,none"):
        if isinstance(found.get(key), (int, float)):
            n = (results.get("n-samples", {}).get(task, {}) or {}).get("effective", 0)
            return float(found[key]), int(n), f"lm_eval {key.split(',')[0]}"
    return None, 0, f"lm_eval task {task!r} reported no accuracy metric (got {sorted(found)})"
