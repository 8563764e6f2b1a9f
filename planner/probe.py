"""Probe the data files once: counts, bad lines, fields, token lengths, a content fingerprint.

The only I/O before planning. Remote data is not read: its declared counts stand in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from planner.errors import ConfigError
from planner.paths import samples_dir
from schemas.data import Data, DataStats, SplitStats
from schemas.records import VALIDATION_FORMAT, SplitScan, UnreadableFile, data_files


def resolve_path(data: Data, base: Path, samples: Path | None = None) -> Path:
    """Where a local or builtin dataset lives on this machine (builtin: under `samples`, default the shipped ones)."""
    if data.is_builtin:
        return (samples or samples_dir()) / data.path.removeprefix("builtin:")
    path = Path(data.path).expanduser()
    return path if path.is_absolute() else base / path


def probe(data: Data, base: Path, chars_per_token: float = 4.0, samples: Path | None = None) -> DataStats:
    """Statistics of the dataset; ConfigError when a local data.path is empty, a file, or does not exist.

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
            training=SplitStats(
                records=d.training,
                tokens_p50=tokens,
                tokens_p95=tokens,
                tokens_max=tokens,
                tokens_total=tokens * d.training,
            ),
            validation=SplitStats(records=d.validation) if d.validation is not None else None,
            fingerprint=fp[:16],
            token_estimate="declared" if d.p95_tokens else "none",
        )
    root = _data_folder(data, base, samples)
    digest = hashlib.sha256()
    root_files = tuple(p.name for p in data_files(root))
    splits: dict[str, SplitStats | None] = {}
    for split in ("training", "validation"):
        files = data_files(root / split)
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
        root=str(root.resolve()),
    )


_LAYOUT = "a folder holding training/*.jsonl (or .csv, .parquet; and optional validation/)"


def _data_folder(data: Data, base: Path, samples: Path | None) -> Path:
    """The dataset folder, or a ConfigError at data.path that says what is wrong with it and what to set."""
    if not data.path.strip():
        raise ConfigError(
            "data.path is empty: it would read the working folder as the dataset",
            path="data.path",
            fix=f"set data.path to {_LAYOUT}, or builtin:<name> for a shipped sample (builtin:tone)",
        )
    root = resolve_path(data, base, samples)
    if root.is_file():
        raise ConfigError(
            f"data.path {data.path!r} is a file; data.path takes a folder holding training/ and validation/ "
            "(or builtin:<name>)",
            path="data.path",
            fix=f"put {root.name} in a folder's training/ and set data.path to that folder",
        )
    if not root.is_dir():
        shipped = root.parent.iterdir() if data.is_builtin and root.parent.is_dir() else ()
        names = sorted(f"builtin:{p.name}" for p in shipped if (p / "training").is_dir())
        fix = f"use one of {', '.join(names)}" if names else f"point data.path at {_LAYOUT}, or builtin:<name>"
        raise ConfigError(f"data folder {data.path!r} does not exist ({root})", path="data.path", fix=fix)
    return root


def _probe_split(root: Path, files: list[Path], fmt: str, chars_per_token: float, digest) -> SplitStats:
    scan = SplitScan(fmt, chars_per_token)
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}",
                path="data.path",
                fix="make the file readable, or move it out of the dataset folder",
            ) from None
        digest.update(rel.encode() + b"\0" + blob)
        try:
            scan.add(rel, blob)
        except UnreadableFile as exc:
            raise ConfigError(str(exc), path="data.path", fix="install pyarrow, or fix or remove the file") from None
    return scan.stats()
