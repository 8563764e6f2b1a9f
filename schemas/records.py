"""The one table of fields per data format, and the scan of a split that the planner's probe and
the runtime's validate_data stage share (pure: the caller reads the files and passes their bytes).
"""

from __future__ import annotations

import hashlib
import json
import math

from schemas.data import LONGEST_KEPT, BadLine, DataFile, SplitStats

MAX_BAD_LINES = 20

# Required fields per format; a tuple lists accepted alternatives (NeMo names included).
FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "prompt_completion": (("prompt",), ("completion",)),
    "messages": (("messages",),),
    "preference": (("prompt",), ("chosen", "chosen_response"), ("rejected", "rejected_response")),
    "unpaired_preference": (("prompt",), ("completion",), ("label",)),
    "prompt_answer": (("prompt",), ("answer", "reference_answer")),
    "documents": (("text",),),
}
# RAG validates on questions, not documents; KTO's unpaired feedback on preference pairs (the gate's accuracy)
VALIDATION_FORMAT = {"documents": "prompt_completion", "unpaired_preference": "preference"}


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
