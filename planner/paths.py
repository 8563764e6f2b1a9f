"""Where the shipped conf/ and templates/ live (schemas.paths), and the options of a config group."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from schemas.paths import conf_dir, samples_dir, templates_dir


def group_options(group: str, roots: Sequence[str | Path] = ()) -> list[str]:
    """Option names of a config group in the shipped conf/ and any other config folders (a team's own, added with
    hydra.searchpath or --config-dir), e.g. group_options('goal') -> ['domain_shift', ...]."""
    folders = [Path(root) / group for root in (roots or [conf_dir()])]
    return sorted({p.stem for folder in folders for p in folder.glob("*.yaml")})


__all__ = ["conf_dir", "group_options", "samples_dir", "templates_dir"]
