"""Replay: general text mixed into every training batch, so a model keeps what it knew.

``method.replay`` names the text (``builtin:<name>`` is ``conf/samples/<name>/corpus.txt``; a
``.txt`` file holds one document per line, a ``.jsonl`` file ``{"text": ...}`` records) and a
ratio. ``ReplayCollator`` wraps the trainer's collator: each micro batch of n task examples gets
``round(ratio * n)`` replay documents (at least one), tokenized like a pre-training line (BOS,
text, EOS) with the loss on every token, and packed end to end into rows as wide as the batch's
longest task example. The draw is seeded by the task examples of the batch, so
a resumed run replays exactly what the first attempt would have. Steps per epoch, validation and
early stopping stay the task's: only the training batches grow.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from runtime.context import StageFailed
from schemas.method import Replay

MIN_DOCUMENTS = 10


def source(replay: Replay) -> Path:
    """The file the replay text comes from: the plan resolves builtin:<name> to its absolute path."""
    if replay.is_builtin:
        raise StageFailed(f"method.replay.data {replay.data!r} is not resolved in this plan: re-plan it")
    return Path(replay.data)


def documents(replay: Replay) -> list[str]:
    """Every non-empty document of the replay source; StageFailed naming the file and line otherwise."""
    path = source(replay)
    if not path.is_file():
        raise StageFailed(
            f"method.replay.data {replay.data!r}: no file {path}; use builtin:general or the absolute "
            "path of a .txt / .jsonl file"
        )
    texts: list[str] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StageFailed(
                    f'{path}:{number}: not JSON ({exc.msg}); each line of a replay .jsonl is {{"text": "..."}}'
                ) from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise StageFailed(
                    f'{path}:{number}: no "text" string; each line of a replay .jsonl is {{"text": "..."}}'
                )
            line = text
        if line.strip():
            texts.append(line)
    if len(texts) < MIN_DOCUMENTS:
        raise StageFailed(
            f"method.replay.data {replay.data!r}: {len(texts)} document(s) in {path}; replay needs at "
            f"least {MIN_DOCUMENTS} to mix into the batches"
        )
    return texts


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids as a pre-training line: BOS (when the tokenizer adds one), the text, EOS; cut to max_length."""
    eos = tokenizer.eos_token_id
    out = []
    for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]:
        ids = list(ids) + ([eos] if eos is not None else [])
        out.append(ids[:max_length])
    return out


class ReplayCollator:
    """Wraps TRL's SFT collator (it reads input_ids, labels and seq_lengths): appends replay examples, the
    loss on all their tokens, to each task micro batch."""

    def __init__(self, collator, encoded: list[list[int]], ratio: float, seed: int):
        if not encoded:
            raise ValueError("no replay documents")
        self.collator = collator
        self.encoded = encoded
        self.ratio = ratio
        self.seed = seed

    def count(self, n: int) -> int:
        return max(1, round(self.ratio * n))

    def draw(self, examples: list[dict]) -> list[int]:
        """Indices into the replay documents for this batch: seeded by the seed and the batch's token ids."""
        digest = hashlib.sha256(str(self.seed).encode())
        for example in examples:
            digest.update(json.dumps(list(example["input_ids"]), separators=(",", ":")).encode())
        rng = random.Random(int.from_bytes(digest.digest()[:8], "big"))
        return [rng.randrange(len(self.encoded)) for _ in range(self.count(len(examples)))]

    def __call__(self, examples: list[dict]):
        return self.collator(list(examples) + self.rows(examples))

    def rows(self, examples: list[dict]) -> list[dict]:
        """The drawn documents packed end to end into rows no wider than the batch's longest task example (as
        tiny-llama was pre-trained: documents concatenated, no attention mask between them), so replay adds
        few rows and no padding."""
        width = max(len(e["input_ids"]) for e in examples)
        packed = "seq_lengths" in examples[0]
        out: list[dict] = []
        ids: list[int] = []
        lengths: list[int] = []

        def flush():
            if ids:
                row = {"input_ids": list(ids), "labels": list(ids)}  # the loss on every token, as in pre-training
                if packed:  # packed batches carry their documents' lengths (position ids restart per document)
                    row["seq_lengths"] = list(lengths)
                out.append(row)
                ids.clear()
                lengths.clear()

        for i in self.draw(examples):
            doc = self.encoded[i][:width]
            if len(ids) + len(doc) > width:
                flush()
            ids.extend(doc)
            lengths.append(len(doc))
        flush()
        return out
