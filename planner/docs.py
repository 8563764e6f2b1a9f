"""Generate docs/config.schema.json, docs/config-reference.md and conf/method/<kind>.yaml from the schemas'
fields and their docs: the schema is the one source of the defaults. docs/openapi.json is the job service's API
(planner.service; skipped, with a note, where the service extra is not installed).

    python -m planner.docs          # write
    python -m planner.docs --check  # exit 1 when the committed files are stale (CI)
"""

from __future__ import annotations

import functools
import json
import sys
import typing
from pathlib import Path

from pydantic import BaseModel, create_model

from planner.compose import RunOptions
from schemas.spec import Spec

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


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
    lines = [
        "# Configuration reference",
        "",
        "Generated from the schemas by `python -m planner.docs`; do not edit by hand.",
        "Keys are paths in the composed config (`python -m planner +goal=tone key=value`).",
        "",
    ]
    seen: set[tuple[str, str]] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        title = f"`{prefix}`" if prefix else "top level"
        lines.extend(
            [
                f"## {title}: {model.__name__}",
                "",
                ((model.__doc__ or "").strip().splitlines() or [""])[0],
                "",
                "| key | type | default | description |",
                "|---|---|---|---|",
            ]
        )
        nested: list[tuple[type[BaseModel], str]] = []
        for name, field in model.model_fields.items():
            default = (
                "required"
                if field.is_required()
                else ("(computed)" if field.default_factory is not None else f"`{field.default!r}`")
            )
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


def _scalar(value) -> str:
    import yaml

    if isinstance(value, float) and value and abs(value) < 1e-3:  # 1.0e-4, as people write learning rates
        mantissa, exponent = f"{value:e}".split("e")
        mantissa = mantissa.rstrip("0")
        return f"{mantissa}0e{int(exponent)}" if mantissa.endswith(".") else f"{mantissa}e{int(exponent)}"
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def method_yaml(kind: str) -> str:
    """conf/method/<kind>.yaml: every key of the method with its schema default and description."""
    from schemas.method import BY_KIND

    cls = BY_KIND[kind]
    doc = " ".join((cls.__doc__ or "").split())
    lines = [
        f"# {doc}" if len(doc) < 117 else f"# {doc[: doc.rfind(' ', 0, 110)]} ...",
        "# Generated from schemas/method.py by `python -m planner.docs`; do not edit by hand. Set a key on the",
        "# command line (method.<key>=...): it overrides that value and keeps the rest of the model's recommended",
        "# recipe; a value here equal to the schema default counts as not set.",
    ]

    def emit(model: type[BaseModel], data: dict, pad: str) -> None:
        for name, field in sorted(model.model_fields.items(), key=lambda item: item[0] != "kind"):
            value = data.get(name)
            note = f"  # {' '.join((field.description or '').split())}" if field.description else ""
            subs = _models(field.annotation)
            if isinstance(value, dict) and value and subs:
                lines.append(f"{pad}{name}:{note}")
                emit(subs[0], value, pad + "  ")
            else:
                lines.append(f"{pad}{name}: {_scalar(value)}{note}")

    emit(cls, cls().model_dump(mode="json"), "")
    return "\n".join(lines) + "\n"


def _files() -> dict[Path, typing.Callable[[], str]]:
    from schemas.method import BY_KIND

    files: dict[Path, typing.Callable[[], str]] = {
        DOCS / "config.schema.json": schema_json,
        DOCS / "config-reference.md": reference_md,
    }
    for kind in BY_KIND:
        files[ROOT / "conf" / "method" / f"{kind}.yaml"] = functools.partial(method_yaml, kind)
    try:
        from planner.service.app import openapi_json
    except ImportError as exc:
        sys.stderr.write(f"note: docs/openapi.json not checked: the service extra is not installed ({exc.name})\n")
    else:
        files[DOCS / "openapi.json"] = openapi_json
    return files


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, make in _files().items():
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
