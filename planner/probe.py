"""Probe the data files once: counts, bad lines, fields, token lengths, a content fingerprint.

The only I/O before planning. Remote data is not read: its declared counts stand in; a Hugging Face Hub dataset
(hf://) without declared counts is read with `datasets` (planner.hub_probe); a mixture probes each of its datasets
and plans the mix (planner.mixture).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from planner.errors import ConfigError
from planner.paths import samples_dir
from planner.probed import Probed, declared_stats
from planner.tokens import TokenCounter
from schemas.data import Data, DataStats, Source, SplitStats
from schemas.knowledge import Lints
from schemas.records import VALIDATION_FORMAT, UnreadableFile, data_files
from schemas.scan import SplitScan


def resolve_path(data: Source, base: Path, samples: Path | None = None) -> Path:
    """Where a local or builtin dataset lives on this machine (builtin: under `samples`, default the shipped ones)."""
    assert data.path is not None
    if data.is_builtin:
        return (samples or samples_dir()) / data.path.removeprefix("builtin:")
    path = Path(data.path).expanduser()
    return path if path.is_absolute() else base / path


def probe(
    data: Data, base: Path, tokens: TokenCounter | None = None, samples: Path | None = None, lints: Lints | None = None
) -> DataStats:
    """Statistics of the dataset (of the mix, for a mixture); ConfigError when a local path is empty, a file, or does
    not exist, or a Hub dataset cannot be read.

    `samples` is the folder builtin:<name> data resolves in (default: the shipped conf/samples);
    planner.diff passes a revision's own conf/samples. `lints` holds the hold-out share a mixture's parts without
    validation keep back (knowledge.lints; default its defaults). `tokens` counts a record's tokens
    (planner.tokens.token_counter: the model's tokenizer, or chars / chars_per_token; default chars/4).
    """
    tokens = tokens or TokenCounter(4.0)
    if data.mixture:
        from planner.mixture import combine

        parts = [probe_source(part, f"data.mixture[{i}]", base, tokens, samples) for i, part in enumerate(data.mixture)]
        return combine(data, parts, lints or Lints())
    return probe_source(data, "data", base, tokens, samples).stats


def probe_source(data: Source, key: str, base: Path, tokens: TokenCounter, samples: Path | None) -> Probed:
    """One dataset (`data`, or a part of a mixture at `key`)."""
    if data.is_hub:
        from planner.hub_probe import probe_hub

        return probe_hub(data, key, tokens)
    if data.is_remote:
        assert data.declared is not None  # the schema requires it
        return Probed(declared_stats(data, "remote"))
    root = _data_folder(data, key, base, samples)
    digest = hashlib.sha256()
    root_files = tuple(p.name for p in data_files(root))
    splits: dict[str, SplitStats | None] = {}
    lengths: list[int] = []
    trained: SplitScan | None = None
    for split in ("training", "validation"):
        files = data_files(root / split)
        if split == "validation" and not files:
            splits[split] = None
            continue
        fmt = VALIDATION_FORMAT.get(data.format, data.format) if split == "validation" else data.format
        scan = _probe_split(root, files, fmt, tokens, digest, key)
        splits[split] = scan.stats(trained)
        if split == "training":
            lengths, trained = scan.lengths, scan
    for name in root_files:
        digest.update(name.encode())
    training = splits["training"]
    assert training is not None
    stats = DataStats(
        source="builtin" if data.is_builtin else "local",
        root_files=root_files,
        training=training,
        validation=splits["validation"],
        fingerprint=digest.hexdigest()[:16],
        root=str(root.resolve()),
        token_estimate=tokens.kind,
        tokenizer=tokens.digest,
    )
    return Probed(stats, lengths)


_LAYOUT = "a folder holding training/*.jsonl (or .csv, .parquet; and optional validation/)"


def _data_folder(data: Source, key: str, base: Path, samples: Path | None) -> Path:
    """The dataset folder, or a ConfigError at <key>.path that says what is wrong with it and what to set."""
    where = f"{key}.path"
    if data.path is None or not data.path.strip():
        raise ConfigError(
            f"{where} is empty: it would read the working folder as the dataset",
            path=where,
            fix=f"set {where} to {_LAYOUT}, or builtin:<name> for a shipped sample (builtin:tone)",
        )
    root = resolve_path(data, base, samples)
    if root.is_file():
        raise ConfigError(
            f"{where} {data.path!r} is a file; {where} takes a folder holding training/ and validation/ "
            "(or builtin:<name>)",
            path=where,
            fix=f"put {root.name} in a folder's training/ and set {where} to that folder",
        )
    if not root.is_dir():
        shipped = root.parent.iterdir() if data.is_builtin and root.parent.is_dir() else ()
        names = sorted(f"builtin:{p.name}" for p in shipped if (p / "training").is_dir())
        fix = f"use one of {', '.join(names)}" if names else f"point {where} at {_LAYOUT}, or builtin:<name>"
        raise ConfigError(f"data folder {data.path!r} does not exist ({root})", path=where, fix=fix)
    return root


def _probe_split(root: Path, files: list[Path], fmt: str, tokens: TokenCounter, digest, key: str) -> SplitScan:
    scan = SplitScan(fmt, tokens)
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}",
                path=f"{key}.path",
                fix="make the file readable, or move it out of the dataset folder",
            ) from None
        digest.update(rel.encode() + b"\0" + blob)
        try:
            scan.add(rel, blob)
        except UnreadableFile as exc:
            raise ConfigError(str(exc), path=f"{key}.path", fix="install pyarrow, or fix or remove the file") from None
    return scan
