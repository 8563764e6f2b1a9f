"""The base model every schema derives from, and the small shared field types."""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, ClassVar

import annotated_types as at
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Upper bounds that a real cluster or run can have: a value past them is a typo, and the planner never searches
# or multiplies beyond them (the JSON Schema shows them). The largest published training clusters hold ~100k GPUs
# (12.5k nodes of 8); an NVL72 rack is the widest single NVLink domain; context windows of 1M tokens are the
# longest trained today; a learning rate above 1 diverges for every optimizer the runtime offers.
MAX_NODES = 16_384
MAX_GPUS_PER_NODE = 72
MAX_TOKENS = 1_048_576
MAX_LR = 1.0
MAX_STEPS = 100_000_000


class Frozen(BaseModel):
    """Immutable, strict about unknown keys: a typo is an error, never silently ignored. Numbers are finite (no
    inf or nan anywhere) and a boolean is not a number (`adapter_dim: true` is refused, not read as 1)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False, protected_namespaces=()
    )
    _numeric_fields: ClassVar[dict[type, frozenset[str]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            numeric = Frozen._numeric_fields.get(cls)
            if numeric is None:
                numeric = Frozen._numeric_fields[cls] = frozenset(
                    name for name, f in cls.model_fields.items() if _takes_number_not_bool(f.annotation)
                )
            for name in numeric:
                if isinstance(data.get(name), bool):  # the error's ctx names the field: readers add it to the path
                    raise PydanticCustomError(
                        "bool_number", "a boolean (true or false) is not a number", {"field": name}
                    )
        return data


def _takes_number_not_bool(annotation: Any) -> bool:
    """int or float (alone, optional, or Annotated), and no bool among the accepted types."""
    args: tuple[Any, ...] = (annotation,)
    while True:
        flat: list[Any] = []
        for a in args:
            origin = typing.get_origin(a)
            if origin is Annotated:
                flat.append(typing.get_args(a)[0])
            elif origin in (typing.Union, types.UnionType):
                flat.extend(typing.get_args(a))
            else:
                flat.append(a)
        if flat == list(args):
            break
        args = tuple(flat)
    return bool({int, float} & set(args)) and bool not in args


def _safe_name(value: str) -> str:
    if ".." in value or not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a safe name: use letters, digits, '.', '_' and '-' "
            "(it becomes part of a path, so no '/', '..' or spaces)"
        )
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]
"""A name that becomes part of a file path: no separators, no traversal."""


_NOUNS: dict[type, str] = {int: "a whole number", float: "a number", bool: "true or false", str: "a text"}


def accepts(field: Any) -> str:
    """'a whole number from 1 to 4096', 'a number > 0 and <= 1', 'true or false', ... from a FieldInfo."""
    args = [a for a in (typing.get_args(field.annotation) or (field.annotation,)) if a is not type(None)]
    base = args[0] if len(args) == 1 else None
    noun = _NOUNS.get(base, "") if isinstance(base, type) else ""
    if not noun:
        return f"a value of type {getattr(field.annotation, '__name__', field.annotation)}".replace("typing.", "")
    bound = {
        name: getattr(m, name)
        for m in field.metadata
        for name in ("ge", "gt", "le", "lt", "max_length")
        if isinstance(m, (at.Ge, at.Gt, at.Le, at.Lt, at.MaxLen)) and hasattr(m, name)
    }
    if "ge" in bound and "le" in bound:
        parts = f"from {bound['ge']} to {bound['le']}"
    else:
        signs = {"ge": ">= {}", "gt": "> {}", "le": "<= {}", "lt": "< {}", "max_length": "of at most {} characters"}
        parts = " and ".join(text.format(bound[name]) for name, text in signs.items() if name in bound)
    optional = " (or null)" if type(None) in typing.get_args(field.annotation) else ""
    return f"{noun} {parts}".strip() + optional
