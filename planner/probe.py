"""Probe the data files once: counts, bad lines, fields, token lengths, a content fingerprint.

The only I/O before planning. Remote data is not read: its declared counts stand in.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from planner.errors import ConfigError
from planner.paths import samples_dir
from schemas.data import BadLine, Data, DataStats, SplitStats

MAX_BAD_LINES = 20

# Required fields per format; a tuple lists accepted alternatives (NeMo names included).
FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "prompt_completion": (("prompt",), ("completion",)),
    "messages": (("messages",),),
    "preference": (("prompt",), ("chosen", "chosen_response"), ("rejected", "rejected_response")),
    "prompt_answer": (("prompt",), ("answer", "reference_answer")),
    "documents": (("text",),),
}
VALIDATION_FORMAT = {"documents": "prompt_completion"}  # RAG validates on questions, not documents


def resolve_path(data: Data, base: Path, samples: Path | None = None) -> Path:
    """Where a local or builtin dataset lives on this machine (builtin: under `samples`, default the shipped ones)."""
    if data.is_builtin:
        return (samples or samples_dir()) / data.path.removeprefix("builtin:")
    path = Path(data.path).expanduser()
    return path if path.is_absolute() else base / path


def probe(data: Data, base: Path, chars_per_token: float = 4.0, samples: Path | None = None) -> DataStats:
    """Statistics of the dataset; ConfigError when a local path does not exist.

    `samples` is the folder builtin:<name> data resolves in (default: the shipped conf/samples);
    planner.diff passes a revision's own conf/samples.
    """
    if data.is_remote:
        assert data.declared is not None  # the schema requires it
        d = data.declared
        tokens = d.p95_tokens or 0
        fp = hashlib.sha256(json.dumps(data.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        return DataStats(
            source="remote",
            training=SplitStats(records=d.training, tokens_p50=tokens, tokens_p95=tokens, tokens_max=tokens,
                                tokens_total=tokens * d.training),
            validation=SplitStats(records=d.validation) if d.validation is not None else None,
            fingerprint=fp[:16],
            token_estimate="declared" if d.p95_tokens else "none",
        )
    root = resolve_path(data, base, samples)
    if not root.is_dir():
        raise ConfigError(
            f"data folder {data.path!r} does not exist ({root})",
            path="data.path",
            fix="point data.path at a folder with training/*.jsonl (and optional validation/*.jsonl), "
            "or use a builtin sample such as builtin:tone",
        )
    digest = hashlib.sha256()
    root_files = tuple(sorted(p.name for p in root.glob("*.jsonl") if p.is_file()))
    splits: dict[str, SplitStats | None] = {}
    for split in ("training", "validation"):
        folder = root / split
        files = sorted(p for p in folder.glob("*.jsonl") if p.is_file()) if folder.is_dir() else []
        if split == "validation" and not files:
            splits[split] = None
            continue
        fmt = VALIDATION_FORMAT.get(data.format, data.format) if split == "validation" else data.format
        splits[split] = _probe_split(root, files, fmt, chars_per_token, digest)
    for name in root_files:
        digest.update(name.encode())
    training = splits["training"]
    assert training is not None
    return DataStats(
        source="builtin" if data.is_builtin else "local",
        root_files=root_files,
        training=training,
        validation=splits["validation"],
        fingerprint=digest.hexdigest()[:16],
        root=None if data.is_builtin else str(root.resolve()),
    )


def _probe_split(root: Path, files: list[Path], fmt: str, chars_per_token: float, digest) -> SplitStats:
    required = FIELDS[fmt]
    records = 0
    bad: list[BadLine] = []
    bad_total = 0
    fields: dict[str, int] = {}
    empty = duplicates = same = unparsable = 0
    seen: set[str] = set()
    lengths: list[int] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}", path="data.path",
                              fix="make the file readable, or move it out of the dataset folder") from None
        digest.update(rel.encode() + b"\0" + blob)
        for lineno, line in enumerate(blob.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            reason = None
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"not valid JSON ({exc.msg} at column {exc.colno})"
                record = None
            if record is not None and not isinstance(record, dict):
                reason, record = "not a JSON object", None
            if record is not None:
                for key in record:
                    fields[key] = fields.get(key, 0) + 1
                missing = [alts[0] for alts in required if not any(a in record for a in alts)]
                if missing:
                    reason = f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
            if reason:
                bad_total += 1
                if len(bad) < MAX_BAD_LINES:
                    bad.append(BadLine(file=rel, line=lineno, reason=reason))
                continue
            records += 1
            texts = [_text(record, alts) for alts in required]
            if any(not t.strip() for t in texts):
                empty += 1
            key = "\x1f".join(texts)
            duplicates += key in seen
            seen.add(key)
            if fmt == "preference" and texts[1].strip() == texts[2].strip():
                same += 1
            if fmt == "prompt_answer" and _number(texts[1]) is None:
                unparsable += 1
            lengths.append(math.ceil(sum(len(t) for t in texts[:2]) / chars_per_token))
    lengths.sort()
    return SplitStats(
        files=tuple(p.relative_to(root).as_posix() for p in files),
        records=records,
        invalid=tuple(bad),
        invalid_total=bad_total,
        fields=dict(sorted(fields.items())),
        empty=empty,
        duplicates=duplicates,
        same_chosen_rejected=same,
        unparsable_answers=unparsable,
        tokens_p50=_percentile(lengths, 0.50),
        tokens_p95=_percentile(lengths, 0.95),
        tokens_max=lengths[-1] if lengths else 0,
        tokens_total=sum(lengths),
    )


def _text(record: dict, alternatives: tuple[str, ...]) -> str:
    value = next(record[a] for a in alternatives if a in record)
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # chat messages
        return " ".join(str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value)
    return "" if value is None else str(value)


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", ""))
    except ValueError:
        return None


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]
