"""Load the plan's data: the records of training/ and validation/ (or a seeded 10% hold-out)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from runtime.context import StageFailed
from schemas.plan import Plan


def data_root(plan: Plan) -> Path:
    data = plan.spec.data
    if data.is_builtin:
        from planner.probe import resolve_path

        return resolve_path(data, Path.cwd())
    if plan.data_stats.root is None:
        raise StageFailed(f"data {data.path!r} is remote: download it into a local folder with training/ and "
                          "validation/ and recompile with data.path=<folder>")
    return Path(plan.data_stats.root)


def read_split(root: Path, split: str) -> list[dict]:
    """Every valid JSON object of <root>/<split>/*.jsonl, in file then line order."""
    records: list[dict] = []
    folder = root / split
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # validate_data reports these with file:line; training skips them
            if isinstance(record, dict):
                records.append(record)
    return records


def splits(plan: Plan) -> tuple[list[dict], list[dict]]:
    """(train, validation): NeMo's rule, 10% of training held out when there is no validation/."""
    root = data_root(plan)
    train = read_split(root, "training")
    validation = read_split(root, "validation")
    if not validation and train:
        order = list(range(len(train)))
        random.Random(_seed(plan)).shuffle(order)
        cut = plan.spec.knowledge.lints.holdout(len(train))
        held = set(order[:cut])
        validation = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
    return train, validation


def _seed(plan: Plan) -> int:
    """The seed of the method that trains (method=auto resolves it the way the planner did)."""
    from planner.core import default_method

    config = plan.spec.model.find_config(plan.decision.config_urn) if plan.decision.config_urn else None
    method = default_method(plan.decision.method, plan.spec, config)
    return getattr(method, "seed", 42)


def field(record: dict, *names: str) -> str:
    """The first present field of `names` (NeMo alternatives such as chosen_response)."""
    for name in names:
        if name in record and record[name] is not None:
            value = record[name]
            return value if isinstance(value, str) else json.dumps(value)
    return ""
