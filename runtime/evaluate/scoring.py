"""How an evaluation stage scores a model: greedy generation in left-padded batches (generate), and the
log-probability of a continuation given its head in right-padded batches (continuation_logprobs). Batches
are sized by padded tokens; SIGTERM is checked between batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.context import Cancelled, RunContext

BATCH_TOKENS = 1 << 16  # padded tokens per batch (prompt + new tokens): sizes batches to the sequences
MAX_BATCH = 64


def context_length(model: Any, tok: Any) -> int:
    """The longest sequence the model takes (prompt + new tokens)."""
    config = getattr(model, "config", None)
    n = getattr(config, "max_position_embeddings", None) or getattr(tok, "model_max_length", None) or 2048
    return int(min(n, 1 << 20))


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _check_stop(ctx: RunContext) -> None:
    if ctx.stop_requested:
        raise Cancelled("SIGTERM during evaluation")


def _encode(tok: Any, text: str, special: bool = True) -> list[int]:
    """Token ids of a rendered prompt; a chat template writes its own special tokens (special=False)."""
    return list(tok(text, add_special_tokens=special)["input_ids"])


def _fit(ids: list[int], budget: int, bos: int | None) -> list[int]:
    """Keep the last `budget` tokens (the question end), and BOS if the sequence started with it."""
    if len(ids) <= budget:
        return ids
    if bos is not None and ids and ids[0] == bos:
        return [bos, *ids[len(ids) - budget + 1 :]]
    return ids[len(ids) - budget :]


def generate(
    ctx: RunContext, model: Any, tok: Any, prompts: list[str], max_new_tokens: int, max_len: int, special: bool = True
) -> list[str]:
    """Greedy generation in left-padded batches (prompts sorted by length to pad little)."""
    import torch
    from transformers import GenerationConfig

    budget = max(1, max_len - max_new_tokens)
    encoded = [_fit(_encode(tok, p, special), budget, tok.bos_token_id) for p in prompts]
    eos = model.generation_config.eos_token_id if model.generation_config.eos_token_id is not None else tok.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=tok.pad_token_id,
        eos_token_id=eos,
        bos_token_id=tok.bos_token_id,
    )
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
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config)
        texts = tok.batch_decode(out[:, width:], skip_special_tokens=True)
        for i, text in zip(batch, texts, strict=True):
            outputs[i] = text.strip()
    return outputs


def _batches(order: list[int], length: Callable[[int], int]) -> list[list[int]]:
    """Consecutive groups of `order` (sorted by length) within BATCH_TOKENS padded tokens and MAX_BATCH rows."""
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (
            len(current) >= MAX_BATCH or (len(current) + 1) * max(length(j) for j in (*current, i)) > BATCH_TOKENS
        ):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def split_ids(tok: Any, head: str, continuation: str, special: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of head and continuation such that head + continuation tokenises as their join
    (as runtime.tiny.benchmark_accuracy does); tokenised apart when the join merges across them."""
    full = _encode(tok, head + continuation, special)
    head_ids = _encode(tok, head, special)
    if full[: len(head_ids)] == head_ids and len(full) > len(head_ids):
        return head_ids, full[len(head_ids) :]
    return head_ids, list(tok(continuation, add_special_tokens=False)["input_ids"])


def continuation_logprobs(
    ctx: RunContext,
    model: Any,
    tok: Any,
    pairs: list[tuple[str, str]],
    max_len: int,
    per_token: bool = False,
    special: bool = True,
) -> list[float]:
    """Summed log-prob of each continuation given its head (the mean per token with ``per_token``), in
    right-padded batches."""
    import torch

    seqs: list[list[int]] = []
    starts: list[int] = []
    for head, cont in pairs:
        h, c = split_ids(tok, head, cont, special)
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
            ids[row, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
            mask[row, : len(seqs[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            # position t predicts token t + 1: log p = logit[target] - logsumexp(logits)
            targets = ids[:, 1:]
            picked = logits[:, :-1].gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            logp = picked - torch.logsumexp(logits[:, :-1], dim=-1)
        for row, i in enumerate(batch):
            s, n = starts[i], len(seqs[i])
            total = float(logp[row, s - 1 : n - 1].sum().item())
            result[i] = total / max(1, n - s) if per_token else total
    return result
