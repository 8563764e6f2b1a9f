"""What an evaluation stage asks the model: the validation records as Items, and each Item's prompt in the
stage's prompt format (the one training used), with few-shot examples (a prompting plan, tuned side) or
BM25-retrieved context (a RAG plan, tuned side) when the plan says so."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.context import StageFailed
from runtime.data import field, messages_text
from runtime.models import chat_turns, render_example, render_prompt
from schemas.plan import Evaluation, PromptFormat, StageData
from schemas.records import VALIDATION_FORMAT, shape

FEW_SHOT_SEPARATOR = "\n\n"


@dataclass
class Item:
    """One validation record as the evaluation sees it."""

    prompt: str  # the raw prompt (before retrieval / few-shot / template)
    reference: str
    rejected: str = ""  # preference data only
    text: str = ""  # what the model is given: template applied, context / examples included
    turns: list[dict] | None = None  # messages data: the conversation before the answer


def items_of(data: StageData, ev: Evaluation, records: list[dict]) -> list[Item]:
    # what validation/ holds (KTO's feedback: pairs), in the trainers' shape (Alpaca: prompt/completion)
    fmt = shape(VALIDATION_FORMAT.get(data.format, data.format))
    items: list[Item] = []
    for r in records:
        if fmt == "preference":
            item = Item(
                field(r, "prompt"),
                field(r, "chosen", "chosen_response"),
                rejected=field(r, "rejected", "rejected_response"),
            )
        elif fmt == "messages":
            msgs = r.get("messages") or []
            if not msgs or not isinstance(msgs, list) or not isinstance(msgs[-1], dict):
                continue
            turns = [
                {"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
                for m in msgs[:-1]
                if isinstance(m, dict)
            ]
            item = Item(messages_text(turns), str(msgs[-1].get("content", "")), turns=turns)
        else:  # prompt_completion, prompt_answer, and the questions of a RAG (documents) plan
            item = Item(field(r, "prompt", "question"), field(r, "completion", "answer", "reference_answer"))
        if item.prompt and item.reference:
            items.append(item)
    cap = ev.max_examples
    return items[:cap] if cap else items


def prepare_prompts(
    ev: Evaluation, fmt: PromptFormat, tok: Any, items: list[Item], train: list[dict], *, tuned: bool
) -> str:
    """Fill item.text in the stage's prompt format (the one training used); returns how the prompt was built."""
    from runtime.retrieval import BM25, chunk

    def prompt(item: Item, text: str | None = None) -> str:
        if fmt.kind == "chat_template" and item.turns and text is None:  # messages data: the conversation itself
            return render_prompt(fmt, item.turns, tok)
        return render_prompt(fmt, text or item.prompt, tok)

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
