"""Where the shipped conf/ and templates/ live (schemas.paths), and the options of a config group."""

from __future__ import annotations

from schemas.paths import conf_dir, samples_dir, templates_dir


def group_options(group: str) -> list[str]:
    """Option names of a config group, e.g. group_options('goal') -> ['domain_shift', ...]."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


__all__ = ["conf_dir", "group_options", "samples_dir", "templates_dir"]
