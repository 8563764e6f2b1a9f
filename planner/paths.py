"""Where the shipped conf/ and templates/ live: the source tree or the installed wheel."""

from __future__ import annotations

import functools
from pathlib import Path

_HERE = Path(__file__).resolve().parent


@functools.cache
def _root(name: str) -> Path:
    for candidate in (_HERE.parent / name, _HERE / f"_{name}"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the shipped {name}/ folder next to {_HERE}: reinstall the package")


def conf_dir() -> Path:
    return _root("conf")


def templates_dir() -> Path:
    return _root("templates")


def samples_dir() -> Path:
    return conf_dir() / "samples"


def group_options(group: str) -> list[str]:
    """Option names of a config group, e.g. group_options('goal') -> ['domain_shift', ...]."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
