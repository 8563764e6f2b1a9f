"""Load a stage's data as plan.json resolved it: the files checked against their planned size and sha256,
the records of training/ and validation/ (or the planned seeded hold-out); and the helpers the training
recipes share to turn records into TRL rows in the stage's prompt format."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from runtime.context import StageFailed
from runtime.models import chat_turns, render_example
from schemas.plan import PromptFormat, StageData
from schemas.records import VALIDATION_FORMAT, UnreadableFile, data_files, records_of


def stage_data(ctx) -> StageData:
    """The running stage's data, its files checked; StageFailed with the fix otherwise."""
    data = ctx.stage.data
    if data is None:
        if ctx.plan.data_stats.source == "remote":
            raise StageFailed(
                f"data {ctx.plan.spec.data.path!r} is remote: download it into a local folder with "
                "training/ and validation/ and re-plan with data.path=<folder>"
            )
        raise StageFailed(f"plan {ctx.plan.id}: stage {ctx.stage.name} records no data: re-plan it")
    check_files(data)
    return data


def check_files(data: StageData) -> None:
    """Every planned file still has its planned size and sha256, and no data file was added: the plan's
    estimates, floors and id describe exactly these bytes."""
    root = Path(data.root)
    planned = {f.path for f in data.files}
    for f in data.files:
        path = Path(f.path)
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise StageFailed(
                f"data file {path} planned but unreadable ({exc.strerror}): restore it, or re-plan "
                "(python -m planner <the same overrides>) to plan the data as it is now"
            ) from None
        if len(blob) != f.bytes or hashlib.sha256(blob).hexdigest() != f.sha256:
            raise StageFailed(
                f"data file {path} changed since planning ({len(blob):,} bytes, was {f.bytes:,}; "
                "sha256 differs): re-plan (python -m planner <the same overrides>) so the plan "
                "describes the data that trains"
            )
    for split in ("training", "validation"):
        for path in data_files(root / split):
            if str(path) not in planned:
                raise StageFailed(
                    f"data file {path} was added after planning: re-plan (python -m planner <the same "
                    "overrides>) so the plan counts it"
                )


def read_split(root: Path, split: str, fmt: str) -> list[dict]:
    """Every record of <root>/<split>/ (.jsonl, .csv, .parquet) in file then line order, in the trainers' shape
    (schemas.records.to_shape: Alpaca as prompt/completion, ShareGPT as messages). Lines that are not JSON objects
    are left out: validate_data reports them with file:line; training skips them."""
    if split == "validation":
        fmt = VALIDATION_FORMAT.get(fmt, fmt)
    records: list[dict] = []
    for path in data_files(root / split):
        try:
            records.extend(records_of(path.relative_to(root).as_posix(), path.read_bytes(), fmt))
        except UnreadableFile as exc:
            raise StageFailed(f"{exc}: install pyarrow, or fix the file and re-plan") from None
    return records


def splits(data: StageData) -> tuple[list[dict], list[dict]]:
    """(train, validation): NeMo's rule, the planned share of training held out (seeded) without validation/."""
    root = Path(data.root)
    train = read_split(root, "training", data.format)
    validation = read_split(root, "validation", data.format)
    if not validation and train:
        order = list(range(len(train)))
        random.Random(data.holdout_seed).shuffle(order)
        cut = max(1, int(len(train) * data.holdout_fraction))
        held = set(order[:cut])
        validation = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
    return train, validation


def field(record: dict, *names: str) -> str:
    """The first present field of `names` (NeMo alternatives such as chosen_response)."""
    for name in names:
        if name in record and record[name] is not None:
            value = record[name]
            return value if isinstance(value, str) else json.dumps(value)
    return ""


def first_text(record: dict, names: tuple[str, ...]) -> str | None:
    """The first of `names` holding non-blank text (NeMo alternatives such as chosen_response); None if none."""
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def prompt_completion(fmt: PromptFormat, prompt: str | list[dict], completion: str) -> dict:
    """One TRL prompt/completion row. Chat: conversational, so TRL applies the tokenizer's chat template (as
    evaluation does, runtime.models.render_prompt); plain: the config's template, split at the completion."""
    if fmt.kind == "chat_template":
        return {"prompt": chat_turns(prompt), "completion": [{"role": "assistant", "content": completion}]}
    assert isinstance(prompt, str)
    head, tail = render_example(fmt, prompt, completion)
    # Spaces that end the prompt part move to the completion: a byte-level BPE merges " word" into one
    # token, so "prompt " would not tokenize as a prefix of "prompt completion" and TRL would cut the
    # completion mask at the wrong token.
    stripped = head.rstrip(" ")
    return {"prompt": stripped, "completion": head[len(stripped) :] + tail}


def messages_text(turns: list[dict]) -> str:
    """Chat turns as plain text for a model without a chat template: one 'role: content' line each."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in turns)


def row_length(tokenizer, row: dict) -> int:
    """Tokens of a TRL row as the trainer tokenizes it (the chat template applied to conversational rows)."""
    if "text" in row:
        return len(tokenizer(row["text"], add_special_tokens=True)["input_ids"])
    if isinstance(row["prompt"], list):
        text = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return len(tokenizer(row["prompt"] + row["completion"], add_special_tokens=True)["input_ids"])


def truncated_rows(tokenizer, rows: list[dict], max_length: int | None) -> int:
    """How many TRL rows are longer than max_length tokens as the trainer will tokenize them (None: no cap)."""
    if max_length is None:
        return 0
    return sum(row_length(tokenizer, row) > max_length for row in rows)
