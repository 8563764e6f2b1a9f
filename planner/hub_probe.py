"""Probe a Hugging Face Hub dataset (hf://org/name[@revision]): its declared counts, or what `datasets` reads.

With data.declared the counts are used as declared and nothing is read (planning offline). Without, `datasets`
reads the dataset's metadata (record counts per split) and streams the first SAMPLE records of each split
(quality and token lengths), from the Hub, or offline from the local datasets cache (HF_DATASETS_CACHE) that an
earlier `datasets.load_dataset` filled. The commit read is pinned in the plan, so the run trains on the records
that were measured. `datasets` is imported only here, only then.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re

from planner.errors import ConfigError
from planner.probed import Probed, declared_stats
from planner.tokens import TokenCounter
from schemas.data import DataStats, HubStats, Source
from schemas.records import VALIDATION_FORMAT
from schemas.scan import SplitScan

SAMPLE = 1000  # records read from each split; a split this short or shorter is measured whole
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def probe_hub(data: Source, key: str, tokens: TokenCounter) -> Probed:
    """The dataset's statistics (ConfigError at <key>.path when it cannot be read and no counts are declared)."""
    repo, revision = data.hub_repo, data.hub_revision
    if data.declared is not None:
        validation = "validation" if data.declared.validation is not None else None
        hub = HubStats(
            repo=repo,
            revision=revision,
            subset=data.subset,
            training_split=data.splits.training,
            validation_split=data.splits.validation or validation,
        )
        return Probed(declared_stats(data, "hub", hub=hub))
    datasets = _datasets(data, key)
    cache = os.environ.get("HF_DATASETS_CACHE")
    try:
        builder = datasets.load_dataset_builder(repo, data.subset, revision=revision, cache_dir=cache)
    except Exception as exc:  # ConnectionError offline, DatasetNotFoundError, ValueError (no such config), ...
        raise _unreadable(data, key, exc) from None
    known = dict(builder.info.splits or {})
    training_split = data.splits.training
    if known and training_split not in known:
        raise ConfigError(
            f"{data.path} has no split {training_split!r} (it has {', '.join(sorted(known))})",
            path=f"{key}.splits.training",
            fix=f"set {key}.splits.training to one of {', '.join(sorted(known))}",
        )
    validation_split = data.splits.validation
    if validation_split is None:
        validation_split = "validation" if "validation" in known else None
    elif known and validation_split not in known:
        raise ConfigError(
            f"{data.path} has no split {validation_split!r} (it has {', '.join(sorted(known))})",
            path=f"{key}.splits.validation",
            fix=f"set {key}.splits.validation to one of {', '.join(sorted(known))}, or null for the hold-out",
        )
    digest = hashlib.sha256(json.dumps([repo, builder.hash, data.subset], default=str).encode())
    splits, lengths, sampled, training_rows = {}, [], False, 0
    trained: SplitScan | None = None  # the training split's scan: the validation records that repeat one
    for split, name in (("training", training_split), ("validation", validation_split)):
        if name is None:
            continue
        fmt = VALIDATION_FORMAT.get(data.format, data.format) if split == "validation" else data.format
        scan = SplitScan(fmt, tokens)
        try:
            stream = datasets.load_dataset(
                repo, data.subset, revision=revision, split=name, streaming=True, cache_dir=cache
            )
            rows = list(itertools.islice(stream, SAMPLE))
        except Exception as exc:
            raise _unreadable(data, key, exc) from None
        digest.update(json.dumps(rows, sort_keys=True, default=str).encode())
        scan.add_rows(name, rows)
        split_stats = scan.stats(trained)
        total = known[name].num_examples if name in known and known[name].num_examples else None
        if len(rows) < SAMPLE:
            total = len(rows)  # read whole: every count is measured
        elif total is None:
            raise ConfigError(
                f"{data.path}: the dataset does not say how many records its {name!r} split holds, and planning "
                f"reads only its first {SAMPLE:,}",
                path=f"{key}.declared",
                fix=f"declare its counts: +{key}.declared.training=<records> (and declared.validation, "
                "declared.p95_tokens)",
            )
        if total > len(rows):  # a sample: the counts are the dataset's, quality and tokens the sample's
            sampled = True
            split_stats = split_stats.model_copy(
                update={
                    "records": total,
                    "usable": None,
                    "unique": None,
                    "tokens_total": round(split_stats.tokens_total / max(1, split_stats.records) * total),
                }
            )
        splits[split] = split_stats
        if split == "training":
            lengths, training_rows, trained = scan.lengths, total, scan
    commit = builder.hash if isinstance(builder.hash, str) and _COMMIT.match(builder.hash) else None
    hub = HubStats(
        repo=repo,
        revision=commit or revision,
        subset=data.subset,
        training_split=training_split,
        validation_split=validation_split,
        sampled=SAMPLE,
        training_rows=training_rows,
    )
    stats = DataStats(
        source="hub",
        counts="sampled" if sampled else "measured",
        training=splits["training"],
        validation=splits.get("validation"),
        fingerprint=digest.hexdigest()[:16],
        token_estimate=tokens.kind,
        tokenizer=tokens.digest,
        hub=hub,
    )
    return Probed(stats, lengths)


def _datasets(data: Source, key: str):
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"reading {data.path} needs the datasets package, which is not installed",
            path=f"{key}.path",
            fix=f"pip install datasets (or the runtime extra), or declare its counts: +{key}.declared.training="
            "<records> (and declared.validation, declared.p95_tokens)",
        ) from None
    datasets.utils.logging.set_verbosity_error()  # no "using the cached version" chatter on the planner's stderr
    datasets.disable_progress_bars()
    return datasets


def _unreadable(data: Source, key: str, exc: Exception) -> ConfigError:
    """Why `datasets` could not read the dataset, and the two ways on: declare the counts, or fill the cache."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    offline = isinstance(exc, ConnectionError)
    repo, revision = data.hub_repo, data.hub_revision
    load = f"datasets.load_dataset({repo!r}" + (f", revision={revision!r}" if revision else "") + ")"
    where = (
        "it is not in the local datasets cache and the Hub cannot be reached (HF_HUB_OFFLINE=1 or no network)"
        if offline
        else reason
    )
    return ConfigError(
        f"cannot read {data.path}: {where}",
        path=f"{key}.path",
        fix=f"plan offline from declared counts: +{key}.declared.training=<records> (and declared.validation, "
        f"declared.p95_tokens); or, where there is network, fill the datasets cache once (python -c "
        f'"import datasets; {load}"; HF_DATASETS_CACHE=<dir> to put it on a shared disk) and plan again'
        + ("" if offline else "; check the id, the revision and data.subset"),
    )
