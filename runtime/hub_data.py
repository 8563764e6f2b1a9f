"""Load a split of a Hugging Face Hub dataset (hf://org/name) as the plan resolved it: datasets.load_dataset at the
planned revision, from the local datasets cache (HF_DATASETS_CACHE) or the Hub.

Offline (HF_HUB_OFFLINE=1, or a compute node without network) only the datasets cache serves it: a dataset that
is not there fails the stage with the command that fills it. A planned commit must be the one in the cache (an
offline load otherwise takes the latest cached copy); a training split whose row count differs from the plan's
fails too (the dataset changed: re-plan).
"""

from __future__ import annotations

import os
import re

from runtime.context import StageFailed
from schemas.data import HubSource

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def rows(hub: HubSource, split: str) -> list[dict]:
    """Every row of one split, in order."""
    try:
        import datasets
    except ImportError:
        raise StageFailed(f"hf://{hub.repo} needs the datasets package: pip install datasets") from None
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    cache = os.environ.get("HF_DATASETS_CACHE")
    try:
        ds = datasets.load_dataset(hub.repo, hub.subset, revision=hub.revision, split=split, cache_dir=cache)
    except ConnectionError:
        raise StageFailed(_not_cached(hub, cache)) from None
    except Exception as exc:  # DatasetNotFoundError, an unknown split or config (ValueError), ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StageFailed(f"cannot load hf://{hub.repo} split {split!r}: {first}: check it and re-plan") from None
    if hub.revision and _COMMIT.match(hub.revision):
        files = [f["filename"] for f in ds.cache_files]
        if files and not any(f"/{hub.revision}/" in f for f in files):
            raise StageFailed(
                f"hf://{hub.repo}: the plan pins commit {hub.revision}, the datasets cache holds another "
                f"({os.path.dirname(files[0])}): load that commit once where there is network, or re-plan "
                "to plan the cached one"
            )
    if split == hub.training_split and hub.training_rows is not None and len(ds) != hub.training_rows:
        raise StageFailed(
            f"hf://{hub.repo} split {split!r} has {len(ds):,} rows, the plan counted {hub.training_rows:,}: "
            "the dataset changed since planning; re-plan (python -m planner <the same overrides>)"
        )
    return ds.to_list()


def _not_cached(hub: HubSource, cache: str | None) -> str:
    where = cache or "the default datasets cache (~/.cache/huggingface/datasets)"
    pin = f", revision={hub.revision!r}" if hub.revision else ""
    subset = f", {hub.subset!r}" if hub.subset else ""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached from this machine"
    return (
        f"hf://{hub.repo} is not in the datasets cache ({where}) and {why}: fill the cache once where there "
        f'is network, with the same HF_DATASETS_CACHE (a shared disk): python -c "import datasets; '
        f'datasets.load_dataset({hub.repo!r}{subset}{pin})"; then rerun this stage'
    )
