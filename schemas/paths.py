"""Where the shipped conf/ and templates/ live: the source tree, or the installed wheel (planner/_conf,
planner/_templates). Shared by the planner and by the runtime's tiny-model builder; reads no file."""

from __future__ import annotations

import functools
from pathlib import Path

_TOP = Path(__file__).resolve().parent.parent  # the source tree's root, or site-packages


@functools.cache
def _root(name: str) -> Path:
    for candidate in (_TOP / name, _TOP / "planner" / f"_{name}"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the shipped {name}/ folder under {_TOP}: reinstall the package")


def conf_dir() -> Path:
    return _root("conf")


def templates_dir() -> Path:
    return _root("templates")


def samples_dir() -> Path:
    return conf_dir() / "samples"
