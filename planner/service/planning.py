"""Plan a job body with the CLI's own steps: compose, validate, probe, plan.

Composing with Hydra costs about half a second, almost all of it in the group selections (model, inventory,
method, goal); the key=value overrides only set keys. So the group selections are composed once per process
(`base`, cached) and each request sets its keys on a copy, then goes through planner.compose.validate with the
override strings, exactly as the CLI's composed config does (tests/service/test_translate.py checks that the Spec
is the one `planner.compose.load(translation.cli())` gives). A change to conf/ is read when the server restarts.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planner.compose import compose, validate
from planner.core import plan as make_plan
from planner.errors import ConfigError
from planner.paths import conf_dir
from planner.probe import probe
from planner.service.api import ApiError, JobCreate
from planner.service.translate import Translation, api_findings, api_path, api_text, finding, translate
from planner.tokens import token_counter
from schemas.plan import Plan
from schemas.spec import Spec

# Hydra's GlobalHydra is one per process: one compose at a time.
_HYDRA = threading.Lock()
EMPTY_DATASET = "Dataset is empty"  # Customizer's words for a dataset with no training files


@functools.lru_cache(maxsize=128)
def base(groups: tuple[str, ...]) -> dict[str, Any]:
    """The composed config of the group selections alone (cached; callers get a deep copy)."""
    with _HYDRA:
        return compose(list(groups))


def composed(t: Translation) -> dict[str, Any]:
    """The config the CLI composes for the translation's overrides: the groups' config with the keys set."""
    raw = copy.deepcopy(base(t.groups))
    for key, value in t.values:
        node = raw
        parts = key.lstrip("+").split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = copy.deepcopy(value)
    return raw


def spec_of(t: Translation) -> Spec:
    """The validated Spec; ConfigError as the CLI raises it."""
    spec, _ = validate(composed(t), t.cli(), [str(conf_dir())])
    return spec


@dataclass(frozen=True)
class Planned:
    translation: Translation
    plan: Plan

    @property
    def command(self) -> str:
        return "python -m planner " + " ".join(shlex.quote(o) for o in self.translation.cli())


def plan_body(
    body: JobCreate, datasets_root: Path, inventory: str, launcher: str = "auto", output_model: str | None = None
) -> Planned:
    """The plan of a job body. ApiError 400 for a versionless URN, 422 for a body the planner refuses as invalid
    (ConfigError: the CLI's exit 2), with key paths in the API's terms. An infeasible plan is returned: the caller
    decides (a job refuses it, a dry run shows it). A launcher other than auto is the server's choice
    (--launcher), one more group selection; `output_model` (a job's) names what the plan publishes."""
    t = translate(body, datasets_root, inventory)
    if launcher != "auto":
        t = dataclasses.replace(t, groups=(*t.groups, f"launcher={launcher}"))
    if output_model is not None:
        t = dataclasses.replace(t, values=(*t.values, ("goal.output_model", output_model)))
    try:
        spec = spec_of(t)
        stats = probe(spec.data, datasets_root, token_counter(spec), lints=spec.knowledge.lints)
    except ConfigError as exc:
        raise ApiError(422, _config_error(exc, t.kind)) from None
    return Planned(t, make_plan(spec, stats))


def refusal(planned: Planned) -> ApiError:
    """The 422 of an infeasible plan: its errors (and warnings) in the API's terms; a dataset whose files sit in
    its root gets Customizer's empty-dataset error first, with our fix."""
    plan, t = planned.plan, planned.translation
    found = api_findings(plan.findings, t.kind)
    if plan.data_stats.root_files:
        ref = t.dataset
        files = ", ".join(plan.data_stats.root_files[:5])
        found.insert(
            0,
            finding(
                "dataset",
                "dataset-empty",
                f"{EMPTY_DATASET}: {ref.namespace}/{ref.name} has no files under training/ ({files} sit in the "
                "dataset root, where nothing is read)",
                f"move the training files into {ref.namespace}/{ref.name}/training/ and the validation files into "
                f"{ref.namespace}/{ref.name}/validation/",
            ),
        )
    return ApiError(422, found)


def _config_error(exc: ConfigError, kind: str) -> list[dict[str, Any]]:
    """A ConfigError (an invalid value: a bound of the schema, an unknown goal) as findings: one per problem, each
    at its key path when the problem starts with one."""
    out = []
    for problem in exc.problems or [exc.message]:
        path, sep, rest = problem.partition(": ")
        if sep and " " not in path:
            out.append(finding(api_path(path, kind), "invalid-value", api_text(rest, kind), api_text(exc.fix, kind)))
        else:
            where = api_path(exc.path, kind) if exc.path else "body"
            out.append(finding(where, "invalid-configuration", api_text(problem, kind), api_text(exc.fix, kind)))
    if exc.problems and exc.message not in ("invalid configuration",):
        for item in out:
            item["msg"] = f"{exc.message}: {item['msg']}" if item["type"] == "invalid-configuration" else item["msg"]
    return out


__all__ = ["EMPTY_DATASET", "Planned", "base", "plan_body", "refusal", "spec_of"]
