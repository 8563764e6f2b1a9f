"""Generate docs/config.schema.json and docs/config-reference.md from the schemas' field docs.

    python -m planner.docs          # write
    python -m planner.docs --check  # exit 1 when the committed files are stale (CI)
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path

from pydantic import BaseModel, create_model

from planner.compose import RunOptions
from schemas.spec import Spec

DOCS = Path(__file__).resolve().parent.parent / "docs"


def user_config_model() -> type[BaseModel]:
    """The composed config a user writes: the Spec plus the run options."""
    fields = {name: (f.annotation, f) for name, f in RunOptions.model_fields.items() if name != "goal"}
    model = create_model("Config", __base__=Spec, **fields)  # type: ignore[call-overload]
    model.__doc__ = "The composed configuration: the groups, plus the run options of the CLI."
    return model


def schema_json() -> str:
    schema = user_config_model().model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ladder planner configuration (composed)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (tuple, list):
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict:
        return "mapping"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models(arg))
    return out


def reference_md() -> str:
    lines = ["# Configuration reference", "",
             "Generated from the schemas by `python -m planner.docs`; do not edit by hand.",
             "Keys are paths in the composed config (`python -m planner +goal=tone key=value`).", ""]
    seen: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        title = f"`{prefix}`" if prefix else "top level"
        lines.extend([f"## {title}: {model.__name__}", "", ((model.__doc__ or "").strip().splitlines() or [""])[0], "",
                      "| key | type | default | description |", "|---|---|---|---|"])
        nested: list[tuple[type[BaseModel], str]] = []
        for name, field in model.model_fields.items():
            default = "required" if field.is_required() else (
                "(computed)" if field.default_factory is not None else f"`{field.default!r}`")
            desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            kind = _type_name(field.annotation).replace("|", "\\|")
            lines.append(f"| `{name}` | {kind} | {default} | {desc} |")
            for sub in _models(field.annotation):
                key = f"{prefix}.{name}" if prefix else name
                tag = sub.model_fields.get("kind")
                label = f"{key} (kind={tag.default})" if tag is not None and len(_models(field.annotation)) > 1 else key
                nested.append((sub, label))
        lines.append("")
        for sub, label in nested:
            if (sub.__name__, label) not in seen:
                seen.add((sub.__name__, label))
                walk(sub, label)

    walk(user_config_model(), "")
    return "\n".join(lines).rstrip() + "\n"


FILES = {"config.schema.json": schema_json, "config-reference.md": reference_md}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, make in FILES.items():
        path = DOCS / name
        text = make()
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        sys.stderr.write("stale generated docs (run python -m planner.docs): " + ", ".join(stale) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
