"""The one table of fields per data format, the one conversion of each format to the trainers' record shape,
the readers of each file type, and the checks of one record (pure but for `data_files`). The scan of a whole split,
which the planner's probe and the runtime's validate_data stage share, is schemas.scan.SplitScan.

File types: JSON lines (.jsonl), CSV with a header row (.csv, every cell a string) and Parquet (.parquet: read
with pyarrow, imported only when such a file is read). A problem is located as file:line (the line a CSV row
starts on) or file:row (Parquet, counted from 1).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BAD_LINES = 20
MAX_SHOWN = 5  # locations kept per other problem (empty, duplicate, ...): the count says how many


@dataclass(frozen=True)
class Format:
    """One data format: the one place its fields and its uses are written down."""

    fields: tuple[tuple[str, ...], ...]  # required fields; a tuple lists accepted alternatives (NeMo names too)
    words: str  # how the ladder and the reports name its records
    validation: str | None = None  # the format validation/ holds, when it is another one
    base_use: str = "as_is"  # what the SFT stage before a DPO, KTO or GRPO stage trains on (StageData.use)
    # (prompt fields, completion fields) a supervised stage reads, when it is not the whole record (in `shape`)
    supervised: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    optional: tuple[str, ...] = ()  # text fields a record may have (a string or null when present)
    shape: str | None = None  # the format its records convert to for the trainers (to_shape), when another one


_PROMPT, _COMPLETION = ("prompt",), ("completion",)
_CHOSEN, _REJECTED = ("chosen", "chosen_response"), ("rejected", "rejected_response")
_ANSWER = ("answer", "reference_answer")
FORMATS: dict[str, Format] = {
    "prompt_completion": Format(
        (_PROMPT, _COMPLETION), "prompt/completion examples", supervised=(_PROMPT, _COMPLETION)
    ),
    "messages": Format((("messages",),), "chat examples"),
    "preference": Format(
        (_PROMPT, _CHOSEN, _REJECTED), "preference pairs", base_use="chosen", supervised=(_PROMPT, _CHOSEN)
    ),
    # unpaired feedback (KTO) is judged on pairs: its validation/ holds preference pairs for the gate's accuracy;
    # its SFT base reads the desirable answers (and the chosen ones of validation pairs)
    "unpaired_preference": Format(
        (_PROMPT, _COMPLETION, ("label",)),
        "answers labelled desirable or undesirable",
        validation="preference",
        base_use="desirable",
        supervised=(_PROMPT, (*_COMPLETION, "chosen")),
    ),
    "prompt_answer": Format(
        (_PROMPT, _ANSWER), "prompts with verifiable answers", base_use="answer", supervised=(_PROMPT, _ANSWER)
    ),
    # RAG validates on questions, not documents
    "documents": Format((("text",),), "documents", validation="prompt_completion"),
    # Alpaca: the prompt is the instruction, then a blank line and the input when there is one
    "alpaca": Format(
        (("instruction",), ("output",)),
        "instruction/output examples (Alpaca)",
        supervised=(_PROMPT, _COMPLETION),
        optional=("input",),
        shape="prompt_completion",
    ),
    # ShareGPT: `conversations` of {from, value}, from human, gpt or system (user and assistant accepted too)
    "sharegpt": Format((("conversations",),), "chat examples (ShareGPT)", shape="messages"),
}
FIELDS = {name: f.fields for name, f in FORMATS.items()}
VALIDATION_FORMAT = {name: f.validation for name, f in FORMATS.items() if f.validation}
SUFFIXES = (".jsonl", ".csv", ".parquet")  # the data files of a split, by type
# a chat field: (role key, content key, role as written -> role in `messages`)
CHATS: dict[str, tuple[str, str, dict[str, str]]] = {
    "messages": ("role", "content", {}),
    "conversations": (
        "from",
        "value",
        {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"},
    ),
}


def shape(fmt: str) -> str:
    """The format a format's records take for the trainers, the ladder and the evaluation (alpaca ->
    prompt_completion, sharegpt -> messages; the others are their own shape)."""
    return FORMATS[fmt].shape or fmt


def to_shape(record: dict, fmt: str) -> dict:
    """A record of `fmt` as a record of shape(fmt): the one conversion the probe, validate_data, the trainers and the
    evaluation share. A record with an error (record_error) is returned as it is: the trainers skip and count it."""
    if FORMATS[fmt].shape is None or parse_line(record, fmt)[1] or record_error(record, fmt):
        return record
    if fmt == "alpaca":
        extra = record.get("input") or ""
        prompt = f"{record['instruction']}\n\n{extra}" if extra.strip() else record["instruction"]
        return {"prompt": prompt, "completion": record["output"]}
    role, content, roles = CHATS["conversations"]
    return {"messages": [{"role": roles[t[role]], "content": t[content]} for t in record["conversations"]]}


def data_files(folder: Path) -> list[Path]:
    """The data files of a split folder (or of a dataset root, where none belong), sorted: the one listing the
    probe, validate_data, the file checks and the loaders share."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


class UnreadableFile(Exception):
    """A data file that cannot be read as its type (corrupt Parquet, Parquet without pyarrow installed)."""


def entries(rel: str, blob: bytes) -> Iterator[tuple[int, str | dict]]:
    """(line or row, a JSON line or a record) of each non-blank entry of a data file, by its suffix."""
    if rel.endswith(".parquet"):
        yield from enumerate(_parquet_rows(rel, blob), start=1)
        return
    if rel.endswith(".csv"):  # a spreadsheet's byte-order mark is not part of the first column's name
        reader = csv.reader(io.StringIO(blob.decode("utf-8-sig", errors="replace"), newline=""))
        header = next(reader, [])
        start = reader.line_num + 1  # the line the next row starts on (a quoted cell may span lines)
        for cells in reader:
            if any(c.strip() for c in cells):
                # a short row's missing cells are missing fields; cells beyond the header are not read
                yield start, dict(zip(header, cells, strict=False))
            start = reader.line_num + 1
        return
    text = blob.decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield lineno, line


def _parquet_rows(rel: str, blob: bytes) -> Iterator[dict]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UnreadableFile(f"{rel}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(pa.BufferReader(blob))
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(f"{rel}: not a readable Parquet file ({exc})") from None
    for batch in table.to_batches():
        yield from batch.to_pylist()


def records_of(rel: str, blob: bytes, fmt: str) -> list[dict]:
    """Every record of a data file that is an object, converted to shape(fmt) (to_shape), in file order: what the
    trainers read (the lines validate_data reports as invalid are left out or, with the wrong fields, kept for the
    trainers to skip and count)."""
    return [to_shape(entry, fmt) for entry in objects_of(rel, blob)]


def objects_of(rel: str, blob: bytes) -> list[dict]:
    """Every record of a data file that is a JSON object, as read, in file order (lines that do not parse are
    left out: validate_data reports them)."""
    out = []
    for _, entry in entries(rel, blob):
        if isinstance(entry, str):
            try:
                entry = json.loads(entry)
            except json.JSONDecodeError:
                continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def record_chars(fields: list[tuple[str, Any]]) -> int:
    """Characters of the longest sequence a well-typed record becomes: prompt + completion (the longer of chosen
    and rejected for a preference pair), or the whole text (a chat: its contents)."""
    texts = [
        len(v) if isinstance(v, str) else sum(len(m[CHATS[name][1]]) for m in v) + len(v) - 1
        for name, v in fields
        if name != "label"
    ]
    if len(texts) == 1:
        return texts[0]
    return texts[0] + max(texts[1:])


def parse_line(line: str | dict, fmt: str) -> tuple[dict | None, str | None]:
    """(record, None) for a JSON object (or a CSV or Parquet row) with the fields of `fmt` (their types:
    type_error), (None, reason) otherwise."""
    if isinstance(line, dict):
        record: Any = line
    else:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(record, dict):
        return None, f"{_kind(record)}, expected a JSON object"
    missing = [alts[0] for alts in FIELDS[fmt] if not any(a in record for a in alts)]
    if missing:
        return None, f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return record, None


def required(record: dict, fmt: str) -> list[tuple[str, Any]]:
    """(name, value) of each required field, in FIELDS order: the first present of its alternatives."""
    return [next((a, record[a]) for a in alts if a in record) for alts in FIELDS[fmt]]


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"  # what else JSON parses to


def record_error(record: dict, fmt: str) -> str | None:
    """Why a record with the fields of `fmt` has the wrong types (type_error, and its optional fields); None when
    right."""
    if reason := type_error(required(record, fmt)):
        return reason
    for name in FORMATS[fmt].optional:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            return f"`{name}` is {_kind(value)}, expected a string"
    return None


def type_error(fields: list[tuple[str, Any]]) -> str | None:
    """Why required fields have the wrong type or shape (records the trainers would skip); None when right."""
    for name, value in fields:
        if name == "label":
            if not isinstance(value, bool):
                return f"label must be true (desirable) or false (undesirable), got {value!r}"
        elif name in CHATS:
            if reason := _chat_error(name, value):
                return reason
        elif not isinstance(value, str):
            return f"`{name}` is {_kind(value)}, expected a string"
    return None


def _chat_error(name: str, turns: object) -> str | None:
    """What runtime.recipes.sft would skip a chat for: not a list of {role, content} strings (ShareGPT: {from,
    value}, from a known role) ending in the assistant's reply to a user."""
    role, content, roles = CHATS[name]
    if not isinstance(turns, list):
        return f"`{name}` is {_kind(turns)}, expected a list of {{{role}, {content}}}"
    for i, m in enumerate(turns, start=1):
        if not isinstance(m, dict):
            return f"`{name}` turn {i} is {_kind(m)}, expected {{{role}, {content}}}"
        for key in (role, content):
            if key not in m:
                return f"`{name}` turn {i} has no `{key}`"
            if not isinstance(m[key], str):
                return f"`{name}` turn {i} `{key}` is {_kind(m[key])}, expected a string"
        if roles and m[role] not in roles:
            return f"`{name}` turn {i} `{role}` is {m[role]!r}, expected one of {', '.join(sorted(roles))}"
    said = [roles.get(m[role], m[role]) for m in turns]
    written = {v: k for k, v in roles.items() if k != v}  # ShareGPT's name of a role, for the message
    for want in ("user", "assistant"):
        if want not in said:
            return f"`{name}` has no {written.get(want, want)} turn"
    if said[-1] != "assistant":
        reply = written.get("assistant", "assistant")
        return f"`{name}` ends with a {turns[-1][role]} turn; the last turn must be the {reply}'s reply"
    return None


def unusable(record: dict, fmt: str) -> str | None:
    """Why a record (an object, in `fmt`) is not one a trainer learns from, as SplitScan counts it (wrong fields or
    types, blank text, a pair with chosen == rejected); None when usable."""
    reason = parse_line(record, fmt)[1] or record_error(record, fmt)
    if reason:
        return reason
    if blank := empty_field(required(record, fmt)):
        return blank
    if fmt == "preference":
        parts = content_parts(required(record, fmt))
        if squash(parts[1]) == squash(parts[2]):
            return "chosen == rejected"
    return None


def empty_field(fields: list[tuple[str, Any]]) -> str | None:
    """Which required text of a well-typed record is blank; None when every one has text."""
    for name, value in fields:
        if name in CHATS:
            role, content, _ = CHATS[name]
            for i, m in enumerate(value, start=1):
                if not m[content].strip():
                    return f"`{name}` turn {i} ({m[role]}) has empty content"
        elif name != "label" and not value.strip():
            return f"`{name}` is empty"
    return None


def squash(text: str) -> str:
    return " ".join(text.split())


def content_parts(fields: list[tuple[str, Any]]) -> list[str]:
    """A well-typed record's required content, each text stripped (chat turns as role \\x02 content, joined by
    \\x01: not whitespace, so normalizing spaces cannot merge two turns or two fields)."""
    return [
        "\x01".join(f"{m['role']}\x02{m['content'].strip()}" for m in value)
        if isinstance(value, list)
        else str(value).strip()
        for _, value in fields
    ]
