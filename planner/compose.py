"""Hydra composes, pydantic validates: the one seam between YAML and the Spec.

`load(overrides)` returns the validated Spec and the run options, or raises ConfigError with the
key path and a fix. Uses Hydra's compose API, so nothing is written and no logging is set up.
`python -m planner` is a @hydra.main app instead; it validates what Hydra composed with `validate`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from planner.config_guard import check_folders
from planner.errors import ConfigError, did_you_mean
from planner.paths import conf_dir, group_options
from planner.secrets import resolved
from schemas.base import Frozen, accepts
from schemas.spec import Spec

RUN_KEYS = ("report", "dry_run", "out_dir", "launch", "overwrite")


class RunOptions(Frozen):
    """How the CLI behaves; not part of the plan."""

    report: Literal["text", "markdown", "json"] = "text"
    dry_run: bool = False
    out_dir: str = "runs"
    launch: bool = False
    overwrite: bool = Field(
        False,
        description="Start the bundle over: remove its run/ and logs/ (checkpoints, "
        "weights, gate, publish). Without it, re-planning keeps them and launch=true resumes.",
    )
    goal: str = Field("", description="The goal option picked with +goal=<name>.")

    @model_validator(mode="after")
    def _launch_needs_bundle(self) -> RunOptions:
        if self.launch and self.dry_run:
            raise ValueError("launch=true runs the bundle, dry_run=true writes none: drop one of them")
        if self.overwrite and self.dry_run:
            raise ValueError("overwrite=true starts the bundle over, dry_run=true writes none: drop one of them")
        return self


def compose(overrides: Sequence[str], config_dir: str | None = None) -> dict[str, Any]:
    """Compose conf/ with Hydra overrides into a plain, resolved dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    root = config_dir or str(conf_dir())
    roots = search_roots(overrides, root)
    if roots is not None:
        check_overrides(overrides, roots)
    check_folders([root, *(searchpath_folders(overrides) or [])])  # before Hydra reads a file: size, aliases
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=root, job_name="planner"):
            cfg = hydra_compose(config_name="config", overrides=[schema_key(o) for o in overrides])
        return resolved(cfg)  # planner.secrets: OmegaConf.to_container(resolve=True), credentials kept out
    except ConfigError:
        raise
    except Exception as exc:  # Hydra and OmegaConf raise many types; all are the user's config
        raise _hydra_error(exc, overrides, root) from None
    finally:
        GlobalHydra.instance().clear()


def load(overrides: Sequence[str], config_dir: str | None = None) -> tuple[Spec, RunOptions]:
    """Compose, split off the run options, validate the Spec."""
    return validate(compose(overrides, config_dir), overrides, search_roots(overrides, config_dir) or ())


def search_roots(overrides: Sequence[str], *primary: str | None) -> list[str] | None:
    """The config folders Hydra searches: the primary ones (the shipped conf/ when none is given), then the
    folders of a `hydra.searchpath=[file://...]` override. None when a searchpath entry is not a folder
    (pkg://...), so that the callers leave option checks to Hydra."""
    extra = searchpath_folders(overrides)
    return None if extra is None else [*([str(p) for p in primary if p] or [str(conf_dir())]), *extra]


def searchpath_folders(overrides: Sequence[str]) -> list[str] | None:
    """The folders of `hydra.searchpath=[file://a,file://b]` overrides; None when an entry is not file://."""
    folders: list[str] = []
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key != "hydra.searchpath":
            continue
        for entry in value.strip().strip("[]").split(","):
            entry = entry.strip().strip("'\"")
            if not entry:
                continue
            if not entry.startswith("file://"):
                return None
            folders.append(entry.removeprefix("file://"))
    return folders


def validate(raw: dict[str, Any], overrides: Sequence[str], roots: Sequence[str] = ()) -> tuple[Spec, RunOptions]:
    """The composed config (a plain dict) -> the validated Spec and the run options. `roots`: the config folders
    searched, for the list of goals when none is given."""
    if "goal" not in raw:
        goals = ", ".join(group_options("goal", roots))
        raise ConfigError("no goal given", fix=f"pick one with +goal=<name>: {goals}")
    run = {k: raw.pop(k) for k in RUN_KEYS if k in raw}
    run["goal"] = _picked_goal(overrides)
    try:
        options = RunOptions.model_validate(run)
    except ValidationError as exc:
        raise validation_error(exc, RunOptions, "invalid run option") from None
    if isinstance(raw.get("method"), dict):
        raw["method"] = explicit_method(raw["method"], overrides)
    if isinstance(raw.get("model"), dict) and "path" in raw["model"]:  # model=local: read its config.json
        from planner.hf_config import expand

        raw["model"] = expand(raw["model"])
    if raw.get("calibration") == "none":  # calibration=none: the priors, whatever a config folder holds
        raw["calibration"] = None
    elif isinstance(raw.get("calibration"), str):  # calibration=<file>: read it here, at the edge
        from planner.calibration import read

        raw["calibration"] = read(raw["calibration"])
    elif raw.get("calibration") is None and roots:  # a calibration file in a config folder (the team's)
        from planner.calibration import in_folders, read

        gpu = raw.get("inventory", {}).get("gpu", {}).get("name") if isinstance(raw.get("inventory"), dict) else None
        shipped = [r for r in roots if Path(r).resolve() == conf_dir().resolve()]
        team = [r for r in roots if r not in shipped]  # the team's folders first, the shipped conf/ last
        found = in_folders([*team, *shipped], gpu) if isinstance(gpu, str) else None
        if found is not None:
            raw["calibration"] = read(found)
    bench = raw.get("eval", {}).get("general_benchmark") if isinstance(raw.get("eval"), dict) else None
    if isinstance(bench, str) and bench.endswith((".yaml", ".yml")):  # a local lm_eval task: its absolute path
        raw["eval"] = {**raw["eval"], "general_benchmark": _task_file(bench)}
    tracking = raw.get("tracking")
    if isinstance(tracking, dict) and isinstance(tracking.get("dir"), str) and tracking["dir"].strip():
        # relative to the folder the planner runs in, as the user typed it; the stages run elsewhere
        raw["tracking"] = {**tracking, "dir": os.path.abspath(os.path.expanduser(tracking["dir"]))}
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, Spec, "invalid configuration") from None
    return spec, options


def _task_file(path: str) -> str:
    """eval.general_benchmark=<task YAML>, relative to the folder the planner runs in: the absolute path the
    stages read (they run elsewhere)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"eval.general_benchmark={path}: no such file",
            fix="give the path of an lm-evaluation-harness task YAML (task: <name>, its dataset), an lm_eval task "
            "name (mmlu, arc_easy), or builtin:general",
        )
    return str(p.resolve())


def schema_key(override: str) -> str:
    """`key.path=v` for a key the schema documents adds or replaces it (`++`), whether or not a YAML file lists it:
    `goal.deadline_hours=5` needs no `+`, the method's YAML lists only what it sets, and under method=auto any
    training key may be given. Any `method.` key goes through too, so the schema refuses a typo with did-you-mean;
    other unknown keys stay Hydra's to refuse."""
    match = re.match(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)=", override)
    if not match:
        return override
    parts = match.group(1).split(".")
    if parts[0] == "method" or parts[-1] in _field_names(Spec, parts[:-1]):
        return f"++{override}"
    return override


def explicit_method(method: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The method block as the user set it: `kind`, every key named on the command line, and every value the
    YAML sets to something other than the schema's default. The rest is left unset, so that the model config's
    recommended recipe fills it (planner.resolve) and a single override keeps the rest of that recipe."""
    from schemas.method import BY_KIND

    cls = BY_KIND.get(str(method.get("kind")))
    if cls is None or method.get("kind") == "auto":
        return method
    named = {
        o.lstrip("+~").split("=", 1)[0].removeprefix("method.")
        for o in overrides
        if o.lstrip("+~").startswith("method.")
    }
    try:
        defaults = cls().model_dump(mode="json")
    except ValidationError:
        return method

    def keep(value: Any, default: Any, prefix: str) -> Any:
        if prefix in named:
            return value
        if isinstance(value, dict) and isinstance(default, dict):
            kept = {k: keep(v, default.get(k, _MISSING), f"{prefix}.{k}") for k, v in value.items()}
            kept = {k: v for k, v in kept.items() if v is not _MISSING}
            return kept or _MISSING
        if isinstance(value, list) and isinstance(default, list) and list(value) == list(default):
            return _MISSING
        return _MISSING if value == default else value

    out: dict[str, Any] = {"kind": method["kind"]}
    for key, value in method.items():
        if key == "kind":
            continue
        kept = keep(value, defaults.get(key, _MISSING), key)
        if kept is not _MISSING:
            out[key] = kept
    return out


_MISSING: Any = object()


def _picked_goal(overrides: Sequence[str]) -> str:
    for item in overrides:
        match = re.match(r"^\+{0,2}goal=(.+)$", item)
        if match:
            return match.group(1)
    return ""


def check_overrides(overrides: Sequence[str], roots: Sequence[str]) -> None:
    """Catch unknown group options early, with the list of valid ones. An option counts when any of the config
    folders (the shipped conf/, --config-dir, hydra.searchpath's file:// entries) has <group>/<option>.yaml;
    sweep values (a,b,c) are checked one by one."""
    from pathlib import Path

    for item in overrides:
        match = re.match(r"^[+~]{0,2}([\w-]+)=([^,\s\[\](){}=]+(?:,[^,\s\[\](){}=]+)*)$", item)
        if not match:
            continue
        group, values = match.groups()
        folders = [Path(root) / group for root in roots if (Path(root) / group).is_dir()]
        if not folders:
            continue
        options = sorted({p.stem for folder in folders for p in folder.glob("*.y*ml")})
        for option in values.split(","):
            if option not in options:
                raise ConfigError(
                    f"unknown {group} '{option}'.{did_you_mean(option, options)}",
                    path=group,
                    fix=f"use one of: {', '.join(options)} (or add conf/{group}/{option}.yaml, "
                    "or a folder of your own with hydra.searchpath=[file://<folder>])",
                )


def _hydra_error(exc: Exception, overrides: Sequence[str], root: str) -> ConfigError:
    text = str(exc).strip()
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text}\n{str(cause).strip()}"
    struct = re.search(r"Key '([^']+)' is not in struct", text) or re.search(r"Could not override '([^']+)'", text)
    if struct:
        key = struct.group(1)
        full = next((o.split("=", 1)[0].lstrip("+~") for o in overrides if key in o.split("=", 1)[0]), key)
        if full == "goal":
            return ConfigError(
                "the goal is added, not overridden", path="goal", fix="write +goal=<name> (with the plus sign)"
            )
        parts = full.split(".")
        if len(parts) == 2 and parts[0] == "method" and parts[1] in _field_names(Spec, ["method"]):
            return ConfigError(
                f"'{full}' is not a key of the selected method (method=auto or another kind)",
                path=full,
                fix=f"pick the method first, e.g. method=lora {full}=..., (keys per method: docs/config-reference.md)",
            )
        if full == "model.path":
            return ConfigError(
                "model.path is the key of model=local (a model read from its own config.json)",
                path=full,
                fix="write model=local model.path=<folder or hub id> (the catalog models carry their architecture)",
            )
        hint = _known_key_hint(full, root)
        return ConfigError(
            f"unknown configuration key '{full}'.{hint}",
            path=full,
            fix="check the spelling against docs/config-reference.md; keys are fixed by the schema",
        )
    first = text.splitlines()[0] if text else type(exc).__name__
    if "yaml" in text.lower() or "while parsing" in text or "while scanning" in text:
        return ConfigError(
            f"malformed YAML: {first}", problems=text.splitlines()[1:6], fix="fix the YAML syntax in that file"
        )
    return ConfigError(
        first,
        problems=[ln for ln in text.splitlines()[1:8] if ln.strip()],
        fix="check the override syntax: key=value, +group=option",
    )


def _known_key_hint(dotted: str, root: str) -> str:
    """A did-you-mean for an unknown dotted key, from the schema's field names."""
    parts = dotted.split(".")
    options = _field_names(Spec, parts[:-1]) if len(parts) > 1 else list(Spec.model_fields) + list(RUN_KEYS)
    return did_you_mean(parts[-1], options)


def _field_names(model: type[BaseModel], parts: Sequence[str]) -> list[str]:
    """Field names under a dotted path of a schema (unions: all members' fields)."""
    models: list[type[BaseModel]] = [model]
    for part in parts:
        nxt: list[type[BaseModel]] = []
        for m in models:
            field = m.model_fields.get(part)
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        models = nxt
    return sorted({name for m in models for name in m.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def validation_error(exc: ValidationError, model: type[BaseModel], title: str) -> ConfigError:
    """Turn pydantic's errors into key paths, each with a specific fix: did-you-mean for an unknown key, the valid
    values or the range of the field for a wrong value."""
    problems: list[str] = []
    fixes: list[str] = []
    first_path = ""
    for err in exc.errors():
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        if "field" in ctx:  # raised by a model about one of its fields (schemas.base.Frozen, method=auto overrides)
            loc = (*loc, *str(ctx["field"]).split("."))
        path, field = _key_path(model, loc)
        first_path = first_path or path
        if err["type"] == "extra_forbidden":
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            options = _field_names(model, [p for p in parent.split(".") if p]) if parent else list(model.model_fields)
            leaf = path.rsplit(".", 1)[-1]
            kind = err["loc"][1] if len(err["loc"]) > 1 and err["loc"][0] == "method" else None
            if parent == "method" and leaf in options and isinstance(kind, str):
                problems.append(f"{path}: not a key of method={kind}; pick the method first (e.g. method=lora)")
                fixes.append(f"set method=<kind> before method.{leaf} (keys per method: docs/config-reference.md)")
            else:
                hint = did_you_mean(leaf, options)
                problems.append(f"{path}: unknown key.{hint}")
                fixes.append(f"valid keys under {parent or 'the top level'}: {', '.join(sorted(options))}")
        elif err["type"] == "missing":
            problems.append(f"{path}: required key is missing")
            fixes.append(f"set {path}" + (f" ({accepts(field)})" if field is not None else ""))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            shown = f" (got {value!r})" if isinstance(value, (str, int, float, bool)) or value is None else ""
            problems.append(f"{path}: {msg}{shown}")
            fixes.append(f"set {path} to {ctx['accepts']}" if "accepts" in ctx else _value_fix(err, path, field))
    specific = [f for f in fixes if f]
    return ConfigError(
        f"{title}: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
        path=first_path,
        problems=problems,
        fix="; ".join(dict.fromkeys(specific))
        if specific
        else "change the key in its conf/ file or override it on the command line (key=value); "
        "the keys and types are in docs/config-reference.md",
    )


_NUMBER_ERRORS = {
    "bool_number",
    "finite_number",
    "float_parsing",
    "float_type",
    "greater_than",
    "greater_than_equal",
    "int_from_float",
    "int_parsing",
    "int_type",
    "less_than",
    "less_than_equal",
    "multiple_of",
}


def _value_fix(err: Any, path: str, field: Any) -> str:
    """What to write instead, from the error and the field's own type and bounds."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _NUMBER_ERRORS and field is not None:
        return f"set {path} to {accepts(field)}"
    if kind == "literal_error":
        return f"set {path} to one of: {ctx.get('expected', '')}".replace("'", "")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return f"set {path}.kind to one of: {ctx.get('expected_tags', '')}".replace("'", "")
    if kind == "tracking_key":
        return f"pick the backend that reads it (tracking={ctx.get('first')} {path}=...) or drop {path}"
    if kind == "credential_in_uri":
        return (
            f"drop the user:password@ part of {path}; the stages read MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) from their environment (launcher.env_passthrough)"
        )
    if kind == "bool_parsing":
        return f"set {path} to true or false"
    if kind in ("string_too_long", "too_long", "too_short", "string_too_short") and field is not None:
        return f"set {path} to {accepts(field)}"
    if kind in ("string_type", "list_type", "dict_type", "model_type") and field is not None:
        return f"set {path} to {accepts(field)}"
    return ""


def _key_path(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, Any]:
    """Pydantic's loc without discriminator tags: ('method','lora','lora','adapter_dim') -> method.lora.adapter_dim,
    and the FieldInfo at its end (None where the path leaves the schema)."""
    out: list[str] = []
    models: list[type[BaseModel]] = [model]
    field: Any = None
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, int) or str(part).isdigit():  # an item of a list: data.mixture[1], same models
            out[-1] += f"[{part}]" if out else str(part)
            i += 1
            continue
        out.append(str(part))
        nxt: list[type[BaseModel]] = []
        field = None
        for m in models:
            found = m.model_fields.get(str(part))
            if found is None:
                continue
            field = field or found
            members = _models_in(found.annotation)
            tags = {getattr(mm.model_fields.get("kind"), "default", None): mm for mm in members}
            if len(members) > 1 and i + 1 < len(loc) and loc[i + 1] in tags:
                i += 1
                nxt.append(tags[loc[i]])
            else:
                nxt.extend(members)
        models = nxt
        i += 1
    return ".".join(out), field
