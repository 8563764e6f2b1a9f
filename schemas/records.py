"""The one table of fields per data format, and the scan of a split that the planner's probe and
the runtime's validate_data stage share (pure: the caller reads the files and passes their bytes).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from schemas.data import LONGEST_KEPT, BadLine, DataFile, SplitStats

MAX_BAD_LINES = 20


@dataclass(frozen=True)
class Format:
    """One data format: the one place its fields and its uses are written down."""

    fields: tuple[tuple[str, ...], ...]  # required fields; a tuple lists accepted alternatives (NeMo names too)
    words: str  # how the ladder and the reports name its records
    validation: str | None = None  # the format validation/ holds, when it is another one
    base_use: str = "as_is"  # what the SFT stage before a DPO, KTO or GRPO stage trains on (StageData.use)
    # (prompt fields, completion fields) a supervised stage reads, when it is not the whole record
    supervised: tuple[tuple[str, ...], tuple[str, ...]] | None = None


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
}
FIELDS = {name: f.fields for name, f in FORMATS.items()}
VALIDATION_FORMAT = {name: f.validation for name, f in FORMATS.items() if f.validation}


def text_of(record: dict, alternatives: tuple[str, ...]) -> str:
    """The first present field of `alternatives` as text (chat messages joined by their contents)."""
    value = next((record[a] for a in alternatives if a in record), None)
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat messages
        return " ".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return "" if value is None else str(value)


def record_chars(record: dict, fmt: str) -> int:
    """Characters of the longest sequence a record becomes: prompt + completion (the longer of chosen and
    rejected for a preference pair), or the whole text."""
    texts = [len(text_of(record, alts)) for alts in FIELDS[fmt] if alts != ("label",)]
    if len(texts) == 1:
        return texts[0]
    return texts[0] + max(texts[1:])


def parse_line(line: str, fmt: str) -> tuple[dict | None, str | None]:
    """(record, None) for a usable line, (None, reason) otherwise."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    missing = [alts[0] for alts in FIELDS[fmt] if not any(a in record for a in alts)]
    if missing:
        return None, f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    if fmt == "unpaired_preference" and not isinstance(record["label"], bool):
        return None, f"label must be true (desirable) or false (undesirable), got {record['label']!r}"
    return record, None


def number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", ""))
    except ValueError:
        return None


class SplitScan:
    """Feed it each file of a split (relative name, bytes); `stats()` gives the split's SplitStats."""

    def __init__(self, fmt: str, chars_per_token: float):
        self.fmt, self.chars_per_token = fmt, chars_per_token
        self.records = self.bad_total = self.empty = self.duplicates = self.same = self.unparsable = 0
        self.bad: list[BadLine] = []
        self.fields: dict[str, int] = {}
        self.seen: set[str] = set()
        self.lengths: list[int] = []
        self.files: list[DataFile] = []

    def add(self, rel: str, blob: bytes) -> None:
        self.files.append(DataFile(path=rel, bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest()))
        required = FIELDS[self.fmt]
        for lineno, line in enumerate(blob.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            record, reason = parse_line(line, self.fmt)
            if record is None:
                self.bad_total += 1
                if len(self.bad) < MAX_BAD_LINES:
                    self.bad.append(BadLine(file=rel, line=lineno, reason=reason or "unusable"))
                continue
            for key in record:
                self.fields[key] = self.fields.get(key, 0) + 1
            self.records += 1
            texts = [text_of(record, alts) for alts in required if alts != ("label",)]
            if any(not t.strip() for t in texts):
                self.empty += 1
            key = "\x1f".join(texts)
            self.duplicates += key in self.seen
            self.seen.add(key)
            if self.fmt == "preference" and texts[1].strip() == texts[2].strip():
                self.same += 1
            if self.fmt == "prompt_answer" and number(texts[1]) is None:
                self.unparsable += 1
            self.lengths.append(math.ceil(record_chars(record, self.fmt) / self.chars_per_token))

    def stats(self) -> SplitStats:
        lengths = sorted(self.lengths)
        return SplitStats(
            files=tuple(f.path for f in self.files),
            digests=tuple(self.files),
            records=self.records,
            invalid=tuple(self.bad),
            invalid_total=self.bad_total,
            fields=dict(sorted(self.fields.items())),
            empty=self.empty,
            duplicates=self.duplicates,
            same_chosen_rejected=self.same,
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
