"""Load a stage's data as plan.json resolved it: the files checked against their planned size and sha256 (or a
Hugging Face Hub dataset at its planned revision, runtime.hub_data), the records of training/ and validation/ (or
the planned seeded hold-out), or the planned mixture of several datasets; and the helpers the training recipes
share to turn records into TRL rows in the stage's prompt format."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

from runtime.context import StageFailed
from runtime.models import chat_turns, render_example
from schemas.data import Mixture, PartData
from schemas.plan import PromptFormat, StageData
from schemas.records import (
    VALIDATION_FORMAT,
    UnreadableFile,
    data_files,
    objects_of,
    records_of,
    to_shape,
    unusable,
)

Source = StageData | PartData  # one dataset: the stage's, or a part of its mixture


def stage_data(ctx) -> StageData:
    """The running stage's data, its files checked; StageFailed with the fix otherwise."""
    data = ctx.stage.data
    if data is None:
        if ctx.plan.data_stats.source == "remote":
            raise StageFailed(
                f"data {ctx.plan.spec.data.path!r} is remote: the runtime reads local folders and Hugging Face Hub "
                "datasets (hf://); download it into a local folder with training/ and validation/ and re-plan with "
                "data.path=<folder>"
            )
        raise StageFailed(f"plan {ctx.plan.id}: stage {ctx.stage.name} records no data: re-plan it")
    check_files(data)
    return data


def sources(data: StageData) -> list[Source]:
    """The datasets a stage reads: its one, or each part of its mixture."""
    return list(data.mixture.parts) if data.mixture is not None else [data]


def check_files(data: StageData) -> None:
    """Every planned file still has its planned size and sha256, and no data file was added: the plan's
    estimates, floors and id describe exactly these bytes."""
    for src in sources(data):
        if src.root is not None:
            _check_folder(Path(src.root), src.files)


def _check_folder(root: Path, files) -> None:
    planned = {f.path for f in files}
    for f in files:
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


def objects(src: Source, split: str) -> list[dict]:
    """The records of one split of a dataset as they are stored (not converted), in order: a folder's lines that
    are JSON objects (CSV and Parquet rows), or a Hub split's rows; [] for a split it does not have."""
    if src.hub is not None:
        from runtime.hub_data import rows

        name = src.hub.training_split if split == "training" else src.hub.validation_split
        return rows(src.hub, name) if name is not None else []
    assert src.root is not None
    root, out = Path(src.root), []
    for path in data_files(root / split):
        try:
            out.extend(objects_of(path.relative_to(root).as_posix(), path.read_bytes()))
        except UnreadableFile as exc:
            raise StageFailed(f"{exc}: install pyarrow, or fix the file and re-plan") from None
    return out


def read_source(src: Source, split: str) -> list[dict]:
    """A split's records in the trainers' shape (read_split for a folder, the rows of a Hub split)."""
    if src.hub is None:
        assert src.root is not None
        return read_split(Path(src.root), split, src.format)
    fmt = VALIDATION_FORMAT.get(src.format, src.format) if split == "validation" else src.format
    return [to_shape(r, fmt) for r in objects(src, split)]


def splits(data: StageData, log: Callable[[str], None] | None = None) -> tuple[list[dict], list[dict]]:
    """(train, validation): NeMo's rule, the planned share of training held out (seeded) without validation/; a
    mixture as the plan resolved it (mix)."""
    if data.mixture is not None:
        mixed = mix(data.mixture, data.holdout_fraction)
        for line in mixed.notes:
            if log is not None:
                log(line)
        return mixed.train, mixed.validation
    train = read_source(data, "training")
    validation = read_source(data, "validation")
    if not validation and train:
        order = list(range(len(train)))
        random.Random(data.holdout_seed).shuffle(order)
        cut = max(1, int(len(train) * data.holdout_fraction))
        held = set(order[:cut])
        validation = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
    return train, validation


@dataclass
class Mixed:
    """A mixture as built: its training and validation records, and what each part gave."""

    train: list[dict] = dc_field(default_factory=list)
    validation: list[dict] = dc_field(default_factory=list)
    drawn: dict[str, int] = dc_field(default_factory=dict)
    notes: list[str] = dc_field(default_factory=list)


def mix(mixture: Mixture, holdout_fraction: float) -> Mixed:
    """The mixture the plan resolved, the same on every run: each part's usable training records (its seeded
    hold-out removed where it has no validation split), `drawn` of them (a seeded sample without repeats, or every
    record drawn // pool times and a seeded sample of the rest), all shuffled with the plan's seed; validation is
    every part's validation records (or hold-out), in part order."""
    out = Mixed()
    for part in mixture.parts:
        fmt = VALIDATION_FORMAT.get(part.format, part.format)
        pool = [to_shape(r, part.format) for r in objects(part, "training") if unusable(r, part.format) is None]
        if part.holdout:
            order = list(range(len(pool)))
            random.Random(f"{mixture.seed}:{part.key}:holdout").shuffle(order)
            held = set(order[: max(1, int(len(pool) * holdout_fraction))] if pool else ())
            out.validation += [r for i, r in enumerate(pool) if i in held]
            pool = [r for i, r in enumerate(pool) if i not in held]
        else:
            out.validation += [to_shape(r, fmt) for r in objects(part, "validation")]
        if len(pool) != part.pool:
            out.notes.append(
                f"warning: {part.key} has {len(pool):,} usable training records, the plan counted {part.pool:,} "
                f"(declared counts?): the mix still draws the planned {part.drawn:,}"
            )
        if part.drawn and not pool:
            raise StageFailed(f"{part.key}: no usable training records to draw {part.drawn:,} from: re-plan")
        drawn = draw(pool, part.drawn, random.Random(f"{mixture.seed}:{part.key}"))
        out.train += drawn
        out.drawn[part.key] = len(drawn)
        times = f" ({part.drawn / len(pool):.2f}x)" if pool and part.drawn > len(pool) else ""
        out.notes.append(f"mixture: {part.key}: {len(drawn):,} of {len(pool):,} records{times}")
    random.Random(mixture.seed).shuffle(out.train)
    return out


def draw(pool: list[dict], k: int, rng: random.Random) -> list[dict]:
    """k records of pool: a sample without repeats when k <= len(pool), else every record k // len(pool) times and
    a sample of the rest (upsampling repeats records, none more than once more than another)."""
    if not pool:
        return []
    whole, rest = divmod(k, len(pool))
    return pool * whole + rng.sample(pool, rest)


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
