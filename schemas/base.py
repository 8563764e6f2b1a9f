"""The base model every schema derives from, and the small shared field types."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Frozen(BaseModel):
    """Immutable, strict about unknown keys: a typo is an error, never silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _safe_name(value: str) -> str:
    if ".." in value or not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a safe name: use letters, digits, '.', '_' and '-' "
            "(it becomes part of a path, so no '/', '..' or spaces)"
        )
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]
"""A name that becomes part of a file path: no separators, no traversal."""
