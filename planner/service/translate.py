"""A Customizer job body -> the overrides the CLI would take, and the planner's findings -> the API's key paths.

`overrides(body, ...)` returns the Hydra overrides of the same plan (`python -m planner <overrides>` compiles
it), as (key, value) pairs: planner.service.planning applies them. The model comes from the config URN (the
catalog: conf/model/*.yaml), the method from training_type and finetuning_type, the hyperparameters go to
method.*, the dataset to data.* (its folder under the datasets root, its format read from the first record), and
the goal is derived from the data (or named with the `goal` extension). One table, HYPERPARAMETERS, maps the
API's keys to the config's both ways, so a finding about method.lora.adapter_dim comes back about
hyperparameters.lora.adapter_dim.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from planner.paths import conf_dir
from planner.service.api import ApiError, ApiFinding, DatasetRef, Hyperparameters, JobCreate
from schemas.model import URN, CustomizationConfig, Model
from schemas.plan import Finding
from schemas.records import FORMATS, data_files, entries

NO_VERSION = "Version is not specified in the config URN"  # Customizer's 400, word for word
# training_type + finetuning_type -> the method kind (lora_merged: LoRA, and publish also writes the merged model)
METHODS = {
    ("sft", "lora"): "lora",
    ("sft", "lora_merged"): "lora",
    ("sft", "all_weights"): "sft",
    ("dpo", "lora"): "dpo",
    ("dpo", "all_weights"): "dpo",
    ("kto", "lora"): "kto",
    ("kto", "all_weights"): "kto",
    ("grpo", "lora"): "grpo",
    ("grpo", "all_weights"): "grpo",
}
# API key under hyperparameters -> config key under method, per method kind ("*": every training kind)
HYPERPARAMETERS: dict[str, tuple[tuple[str, str], ...]] = {
    "*": (
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("learning_rate", "learning_rate"),
        ("min_learning_rate", "min_learning_rate"),
        ("warmup_steps", "warmup_steps"),
        ("weight_decay", "weight_decay"),
        ("seed", "seed"),
        ("max_steps", "max_steps"),
        ("val_check_interval", "val_check_interval"),
        ("sequence_packing_enabled", "sequence_packing"),
        ("lora.adapter_dim", "lora.adapter_dim"),
        ("lora.alpha", "lora.alpha"),
        ("lora.adapter_dropout", "lora.adapter_dropout"),
        ("lora.target_modules", "lora.target_modules"),
        ("finetuning_type", "finetuning_type"),
    ),
    "dpo": (
        ("dpo.ref_policy_kl_penalty", "beta"),
        ("dpo.preference_loss_weight", "preference_loss_weight"),
        ("dpo.sft_loss_weight", "sft_loss_weight"),
    ),
    "kto": (
        ("kto.ref_policy_kl_penalty", "beta"),
        ("kto.desirable_weight", "desirable_weight"),
        ("kto.undesirable_weight", "undesirable_weight"),
    ),
    "grpo": (
        ("grpo.num_generations_per_prompt", "num_generations_per_prompt"),
        ("grpo.ref_policy_kl_penalty", "kl_beta"),
        ("grpo.generation_temperature", "temperature"),
    ),
}
# Keys Customizer has and this service cannot honour: set, they refuse the job (with this fix); None: accepted,
# not applied, and the job says so in its warnings.
UNSUPPORTED: dict[str, str | None] = {
    "dpo.preference_average_log_probs": "remove it: the DPO loss here sums log-probabilities (TRL's sigmoid loss)",
    "dpo.sft_average_log_probs": "remove it: the DPO loss here sums log-probabilities (TRL's sigmoid loss)",
    "dpo.max_grad_norm": "remove it: the trainer clips gradients at 1.0",
    "sft.hidden_dropout": "remove it: the model keeps its own dropout (LoRA's is lora.adapter_dropout)",
    "sft.attention_dropout": "remove it: the model keeps its own dropout (LoRA's is lora.adapter_dropout)",
    "sft.ffn_dropout": "remove it: the model keeps its own dropout (LoRA's is lora.adapter_dropout)",
    "distillation": "remove it: distillation is not supported; use training_type sft, dpo or grpo",
    "log_every_n_steps": None,
    "grpo.environment": None,
}
# The goal of a job that names none, by the shape of its data: the metric the gate compares and the kind of gap.
GOALS = {
    "prompt_completion": ("rouge_l", "task"),
    "messages": ("rouge_l", "task"),
    "preference": ("preference_accuracy", "alignment"),
    "unpaired_preference": ("preference_accuracy", "alignment"),
    "prompt_answer": ("pass_at_1", "reasoning"),
    "documents": ("answer_recall", "knowledge"),
}
# config key prefix -> the API's key for a finding about it (the rest of the server's config keeps its own name)
_PREFIXES = (("model.config", "config"), ("model", "config"), ("data", "dataset"), ("method", "hyperparameters"))


@dataclass(frozen=True)
class CatalogEntry:
    option: str  # conf/model/<option>.yaml
    model: Model
    config: CustomizationConfig

    @property
    def urn(self) -> URN:
        return self.config.parsed


@functools.cache
def catalog() -> dict[str, CatalogEntry]:
    """Every customization config of the shipped model catalog, by URN (read once per process)."""
    out: dict[str, CatalogEntry] = {}
    for path in sorted((conf_dir() / "model").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or not raw.get("configs"):
            continue  # model=local: a model read from its own config.json
        model = Model.model_validate(raw)
        for config in model.configs:
            out[config.urn] = CatalogEntry(path.stem, model, config)
    return out


def resolve_config(text: str | dict[str, Any]) -> CatalogEntry:
    """The catalog entry of a config URN (namespace/name@version+gpu, or name@version+gpu alone). A URN without a
    version is Customizer's 400; one the catalog lacks is a 422 naming the URNs of that model."""
    if not isinstance(text, str):
        raise ApiError(422, [_finding("config", "config-object", "pass the config's URN as a string", "")])
    namespaced = "/" in text
    try:
        urn = URN.parse(text if namespaced else f"any/{text}")  # the name alone: any namespace of the catalog
    except ValueError as exc:
        message = str(exc).replace("'any/", "'")
        raise ApiError(422, [_finding("config", "config-urn-invalid", message, "")]) from None
    if urn.version is None:
        raise ApiError(400, NO_VERSION)
    entries_ = catalog()
    found = [e for e in entries_.values() if _matches(e.urn, urn, namespaced)]
    if len(found) == 1:
        return found[0]
    same_model = sorted(u for u, e in entries_.items() if e.urn.name == urn.name)
    fix = f"use one of: {', '.join(same_model or sorted(entries_))} (GET /v1/customization/configs lists them)"
    message = (
        f"{text!r} names {len(found)} configs of the catalog"
        if found
        else f"{text!r} is not a customization config of the catalog"
    )
    raise ApiError(422, [_finding("config", "config-urn-unknown", message, fix)])


def _matches(have: URN, want: URN, namespaced: bool) -> bool:
    return (
        have.name == want.name
        and have.version == want.version
        and (not namespaced or want.namespace == have.namespace)
        and want.gpu_class in (None, have.gpu_class)
    )


def dataset_ref(dataset: DatasetRef | str, namespace: str | None) -> DatasetRef:
    if isinstance(dataset, DatasetRef):
        if dataset.files_url:
            raise ApiError(
                422,
                [
                    _finding(
                        "dataset.files_url",
                        "dataset-files-url",
                        "files_url is not supported: datasets are read from the server's datasets root",
                        "remove files_url and put the files under <datasets root>/<namespace>/<name>/training/",
                    )
                ],
            )
        return dataset
    ns, _, name = dataset.rpartition("/")
    try:
        return DatasetRef(name=name, namespace=ns or namespace or "default")
    except ValueError:
        raise ApiError(
            422, [_finding("dataset", "dataset-name", f"{dataset!r} is not namespace/name", "use namespace/name")]
        ) from None


def dataset_folder(ref: DatasetRef, root: Path) -> Path:
    """<root>/<namespace>/<name>; 422 when it does not exist, with the layout to create."""
    folder = root / ref.namespace / ref.name
    if not folder.is_dir():
        raise ApiError(
            422,
            [
                _finding(
                    "dataset",
                    "dataset-not-found",
                    f"dataset {ref.namespace}/{ref.name} does not exist: no folder {folder}",
                    f"create {folder}/training/ with the training .jsonl files (and validation/ for validation)",
                )
            ],
        )
    return folder


def data_format(folder: Path) -> str:
    """The format of the dataset, from the fields of the first record of its first training file (the format whose
    required fields are all there, the most specific one); prompt_completion when nothing can be read (the planner
    then reports what is wrong with the data)."""
    files = data_files(folder / "training")
    if not files:
        return "prompt_completion"
    first = files[0]
    try:
        with first.open("rb") as handle:
            blob = handle.read(1 << 20) if first.suffix != ".parquet" else handle.read()
        entry = next(entries(first.name, blob), None)
    except Exception:  # an unreadable file: the probe says what is wrong with it, at its line
        return "prompt_completion"
    record: Any = entry[1] if entry else None
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except json.JSONDecodeError:
            record = None
    if not isinstance(record, dict):
        return "prompt_completion"
    fitting = [
        (len(fmt.fields), -order, name)
        for order, (name, fmt) in enumerate(FORMATS.items())
        if all(any(key in record for key in alternatives) for alternatives in fmt.fields)
    ]
    return max(fitting)[2] if fitting else "prompt_completion"


@dataclass(frozen=True)
class Translation:
    """What a body becomes: the overrides in order (groups first), warnings, and the names the job reports."""

    groups: tuple[str, ...]  # group selections, e.g. ("model=tiny-llama", "inventory=local", "method=lora")
    values: tuple[tuple[str, Any], ...]  # (dotted config key, value), in order
    kind: str
    entry: CatalogEntry
    dataset: DatasetRef
    warnings: tuple[tuple[str, str], ...]  # (message, explanation)

    def cli(self) -> list[str]:
        """The overrides as the CLI takes them."""
        return [*self.groups, *(f"{key}={hydra_value(value)}" for key, value in self.values)]


def translate(body: JobCreate, datasets_root: Path, inventory: str) -> Translation:
    entry = resolve_config(body.config)
    hp = body.hyperparameters
    ref = dataset_ref(body.dataset, body.namespace)
    folder = dataset_folder(ref, datasets_root)
    fmt = data_format(folder)
    refused, warnings = _unsupported(hp)
    kind = METHODS.get((hp.training_type, hp.finetuning_type))
    if kind is None and hp.training_type != "distillation":
        refused.append(
            _finding(
                "hyperparameters.finetuning_type",
                "finetuning-type",
                f"finetuning_type {hp.finetuning_type} does not go with training_type {hp.training_type}",
                "use lora or all_weights",
            )
        )
    if refused:
        raise ApiError(422, refused)
    assert kind is not None
    groups = [f"model={entry.option}", f"inventory={inventory}", f"method={kind}"]
    if body.goal:
        groups.insert(0, f"+goal={body.goal}")
    values: list[tuple[str, Any]] = []
    metric, gap = GOALS.get(FORMATS[fmt].shape or fmt, GOALS["prompt_completion"])
    goal_keys: list[tuple[str, Any]] = [("goal.name", ref.name), ("goal.namespace", ref.namespace)]
    if not body.goal:
        goal_keys += [
            ("goal.description", f"Customizer job: dataset {ref.namespace}/{ref.name}, config {entry.config.urn}"),
            ("goal.gap", gap),
            ("goal.metric", metric),
        ]
    values += goal_keys
    values += [("model.config", entry.config.urn)]
    values += [
        ("data.name", ref.name),
        ("data.description", f"dataset {ref.namespace}/{ref.name}"),
        ("data.path", str(folder)),
        ("data.format", fmt),
        ("data.declared", None),
    ]
    given = hp.model_dump(exclude_none=True)
    for api_key, config_key in [*HYPERPARAMETERS["*"], *HYPERPARAMETERS.get(kind, ())]:
        value = _get(given, api_key)
        if value is None:
            continue
        if api_key == "finetuning_type":
            if kind in ("dpo", "kto", "grpo"):
                values.append((f"method.{config_key}", value))
            continue
        if api_key.startswith("lora.") and hp.finetuning_type == "all_weights":
            warnings.append((f"hyperparameters.{api_key} is not used", "finetuning_type all_weights trains no adapter"))
            continue
        values.append((f"method.{config_key}", value))
    if hp.optimizer is not None:
        if hp.optimizer.startswith("adam_"):
            raise ApiError(
                422,
                [
                    _finding(
                        "hyperparameters.optimizer",
                        "optimizer",
                        f"optimizer {hp.optimizer} is not supported (the trainers use AdamW)",
                        "use adamw_with_cosine_annealing or adamw_with_flat_lr",
                    )
                ],
            )
        values.append(("method.optimizer", "adamw"))
        if hp.optimizer == "adamw_with_flat_lr" and hp.min_learning_rate is None and hp.learning_rate is not None:
            values.append(("method.min_learning_rate", hp.learning_rate))  # a cosine from lr to lr is flat
    if hp.finetuning_type == "lora_merged":
        values.append(("publish.merge", True))
    return Translation(tuple(groups), tuple(values), kind, entry, ref, tuple(warnings))


def _unsupported(hp: Hyperparameters) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    given = hp.model_dump(exclude_none=True)
    refused: list[dict[str, Any]] = []
    warnings: list[tuple[str, str]] = []
    for key, fix in UNSUPPORTED.items():
        if _get(given, key) is None:
            continue
        if fix is None:
            warnings.append((f"hyperparameters.{key} is not applied", _NOT_APPLIED.get(key, "")))
        else:
            refused.append(
                _finding(f"hyperparameters.{key}", "unsupported-hyperparameter", f"{key} is not supported", fix)
            )
    if hp.training_type == "distillation" and not any(f["path"] == "hyperparameters.distillation" for f in refused):
        refused.append(
            _finding(
                "hyperparameters.training_type",
                "unsupported-training-type",
                "distillation is not supported",
                "use training_type sft, dpo or grpo",
            )
        )
    return refused, warnings


_NOT_APPLIED = {
    "log_every_n_steps": "the runtime logs the training loss every step (metrics.jsonl)",
    "grpo.environment": "the rewards are the config recipe's verifiable rewards (method.rewards in the plan)",
}


def _get(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)  # type: ignore[assignment]
    return data


def hydra_value(value: Any) -> str:
    """A value as a Hydra override writes it: null, true/false, numbers as Python prints them, lists in brackets,
    a plain name bare and other text in double quotes (a quote or backslash escaped)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    if _BARE.match(text) and text.lower() not in _WORDS:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_WORDS = {"true", "false", "null", "nan", "inf", "yes", "no", "on", "off"}


# ----------------------------------------------------------------------------- findings, in the API's terms


def api_path(config_path: str, kind: str) -> str:
    """The request's key path of a config key path (method.beta -> hyperparameters.dpo.ref_policy_kl_penalty for
    DPO); keys the request has no name for keep their own (inventory.*, goal.*: the server's config)."""
    for api_key, config_key in [*HYPERPARAMETERS.get(kind, ()), *HYPERPARAMETERS["*"]]:
        full = f"method.{config_key}"
        if config_path == full or config_path.startswith(full + "."):
            return f"hyperparameters.{api_key}{config_path.removeprefix(full)}"
    for prefix, api in _PREFIXES:
        if config_path == prefix or config_path.startswith(prefix + "."):
            return api if prefix in ("model", "data") else api + config_path.removeprefix(prefix)
    return config_path


def api_text(text: str, kind: str) -> str:
    """A message or fix with its config key paths rewritten as the request's (longest first)."""
    pairs = sorted(
        (
            (f"method.{config_key}", f"hyperparameters.{api_key}")
            for api_key, config_key in [*HYPERPARAMETERS.get(kind, ()), *HYPERPARAMETERS["*"]]
        ),
        key=lambda pair: -len(pair[0]),
    )
    pairs += [("model.config", "config"), ("data.path", "dataset")]
    pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(a) for a, _ in pairs) + r")(?![\w])")
    table = dict(pairs)
    return pattern.sub(lambda m: table[m.group(1)], text)


def api_findings(findings: tuple[Finding, ...] | list[Finding], kind: str) -> list[dict[str, Any]]:
    """The plan's findings as the API reports them: errors first, then warnings (infos are left to the plan)."""
    order = {"error": 0, "warning": 1}
    out = []
    for f in sorted((f for f in findings if f.severity in order), key=lambda f: order[f.severity]):
        out.append(
            _finding(api_path(f.path, kind), f.code, api_text(f.message, kind), api_text(f.fix, kind), f.severity)
        )
    return out


def _finding(path: str, code: str, message: str, fix: str, severity: str = "error") -> dict[str, Any]:
    return ApiFinding(
        loc=["body", *path.split(".")],
        path=path,
        msg=message,
        fix=fix,
        type=code,
        severity=severity,
    ).model_dump()


finding = _finding
