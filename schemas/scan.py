"""The scan of a split that the planner's probe and the runtime's validate_data stage share: each record checked
against its format (schemas.records), counted as usable, duplicate or near duplicate, and measured in tokens. Pure:
the caller reads the files and passes their bytes."""

from __future__ import annotations

import functools
import hashlib
import math
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.data import LONGEST_KEPT, BadLine, DataFile, SplitStats
from schemas.records import (
    FORMATS,
    MAX_BAD_LINES,
    MAX_SHOWN,
    content_parts,
    empty_field,
    entries,
    parse_line,
    record_chars,
    record_error,
    required,
    shape,
    squash,
    to_shape,
)

# near duplicates fold case, typographic punctuation (replaced), ASCII punctuation and spacing (deleted, in C:
# bytes.translate keeps the probe fast)
_TYPOGRAPHIC = "\u2018\u2019\u201c\u201d\u00ab\u00bb\u2013\u2014\u2026\u00bf\u00a1"  # quotes, dashes, ellipsis
_FOLDED = (string.punctuation + " \t\n\r\x0b\x0c").encode()

Fields = list[tuple[str, Any]]  # a record's required fields, as schemas.records.required gives them
COUNT_BATCH = 4096  # records counted at once (a tokenizer encodes a batch in parallel)


def content_keys(parts: list[str]) -> tuple[bytes, bytes]:
    """(exact key, near key) of a usable record's parts: hashes of its content with whitespace normalized, and
    with case, punctuation and spacing folded too. Equal exact keys are duplicates; equal near keys only, near
    duplicates."""
    exact = squash("\0".join(parts))  # one pass over the record: "\0" is not whitespace, fields stay apart
    near = exact.casefold()
    for c in _TYPOGRAPHIC:
        if c in near:
            near = near.replace(c, "")
    return _hash(exact.encode()), _hash(near.encode().translate(None, _FOLDED))


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", ""))
    except ValueError:
        return None


@dataclass
class _Tally:
    """How many lines have one problem, and the first few of them."""

    keep: int = MAX_SHOWN
    count: int = 0
    shown: list[BadLine] = field(default_factory=list)

    def add(self, rel: str, line: int, reason: str) -> None:
        self.count += 1
        if len(self.shown) < self.keep:
            self.shown.append(BadLine(file=rel, line=line, reason=reason))


class SplitScan:
    """Feed it each file of a split (relative name, bytes); `stats()` gives the split's SplitStats.

    A line is a record (right fields, right types) or invalid; a record is usable (no blank text; a pair's
    chosen != rejected) or not; a usable record is unique or a duplicate of an earlier one. The floors count
    the unique ones.
    """

    def __init__(self, fmt: str, tokens: float | Callable[[list[Fields]], list[int]]):
        """`tokens` counts the tokens of a batch of records from their fields (planner.tokens.TokenCounter), or is
        characters per token: a record's characters / it, rounded up."""
        self.fmt = fmt
        self.tokens = tokens if callable(tokens) else functools.partial(_chars, chars_per_token=tokens)
        self.pending: list[Fields] = []  # records whose tokens are counted in the next batch
        self.records = self.usable = self.unparsable = 0
        self.invalid, self.empty, self.same = _Tally(MAX_BAD_LINES), _Tally(), _Tally()
        self.duplicates, self.near = _Tally(), _Tally()
        self.fields: dict[str, int] = {}
        self.first: dict[bytes, str] = {}  # exact key -> where it first occurs
        self.first_near: dict[bytes, str] = {}
        self.counted: list[int] = []  # tokens per record, in order (`lengths`)
        self.files: list[DataFile] = []

    def add(self, rel: str, blob: bytes) -> None:
        """Scan one file (UnreadableFile when it cannot be read as its type)."""
        self.files.append(DataFile(path=rel, bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest()))
        for lineno, line in entries(rel, blob):
            self._line(rel, lineno, line)

    def add_rows(self, rel: str, rows: Iterable[dict]) -> int:
        """Scan records that are objects already (a Hub dataset's rows), located as rel:row (from 1); how many."""
        n = 0
        for n, row in enumerate(rows, start=1):
            self._line(rel, n, row)
        return n

    def _line(self, rel: str, lineno: int, line: str | dict) -> None:
        record, reason = parse_line(line, self.fmt)
        fields = required(record, self.fmt) if record is not None else []
        if record is None or (reason := record_error(record, self.fmt)):
            self.invalid.add(rel, lineno, reason or "unusable")
            return
        for key in record:
            self.fields[key] = self.fields.get(key, 0) + 1
        self.records += 1
        shaped = required(to_shape(record, self.fmt), shape(self.fmt)) if FORMATS[self.fmt].shape else fields
        self.pending.append(shaped)
        if len(self.pending) >= COUNT_BATCH:
            self._count()
        if blank := empty_field(fields):
            self.empty.add(rel, lineno, blank)
            return
        parts = content_parts(shaped)
        if self.fmt == "preference" and squash(parts[1]) == squash(parts[2]):
            self.same.add(rel, lineno, "chosen == rejected")
            return
        self.usable += 1
        if self.fmt == "prompt_answer" and number(parts[1]) is None:
            self.unparsable += 1
        exact, near = content_keys(parts)
        if exact in self.first:
            self.duplicates.add(rel, lineno, f"duplicate of {self.first[exact]}")
            return
        self.first[exact] = f"{rel}:{lineno}"
        if near in self.first_near:
            why = f"near duplicate of {self.first_near[near]} (differs in case, punctuation or spacing only)"
            self.near.add(rel, lineno, why)
        else:
            self.first_near[near] = f"{rel}:{lineno}"

    def _count(self) -> None:
        if self.pending:
            self.counted.extend(self.tokens(self.pending))
            self.pending = []

    @property
    def lengths(self) -> list[int]:
        """Tokens of every record scanned so far, in order."""
        self._count()
        return self.counted

    def stats(self, training: SplitScan | None = None) -> SplitStats:
        """The split's statistics; for a validation split, `training` (its training split's scan) finds the records
        that repeat a training record."""
        lengths = sorted(self.lengths)
        unique = len(self.first)
        leaked = _Tally()
        if training is not None:
            for key, where in self.first_near.items():
                if key in training.first_near:
                    rel, line = where.rsplit(":", 1)
                    leaked.add(rel, int(line), f"repeats training record {training.first_near[key]}")
        return SplitStats(
            files=tuple(f.path for f in self.files),
            digests=tuple(self.files),
            records=self.records,
            usable=self.usable,
            unique=unique,
            invalid=tuple(self.invalid.shown),
            invalid_total=self.invalid.count,
            fields=dict(sorted(self.fields.items())),
            empty=self.empty.count,
            empty_at=tuple(self.empty.shown),
            duplicates=self.duplicates.count,
            duplicate_at=tuple(self.duplicates.shown),
            near_duplicates=self.near.count,
            near_duplicate_rate=round(self.near.count / unique, 4) if unique else 0.0,
            near_duplicate_at=tuple(self.near.shown),
            in_training=leaked.count,
            in_training_at=tuple(leaked.shown),
            same_chosen_rejected=self.same.count,
            same_chosen_rejected_at=tuple(self.same.shown),
            unparsable_answers=self.unparsable,
            tokens_p50=percentile(lengths, 0.50),
            tokens_p95=percentile(lengths, 0.95),
            tokens_max=lengths[-1] if lengths else 0,
            tokens_total=sum(lengths),
            tokens_longest=tuple(reversed(lengths[-LONGEST_KEPT:])),
        )


def percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def _chars(records: list[Fields], chars_per_token: float) -> list[int]:
    return [math.ceil(record_chars(fields) / chars_per_token) for fields in records]
