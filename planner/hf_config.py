"""A model from its own Hugging Face config.json: `model=local model.path=<directory or hub id>`.

The seam (planner.compose.validate) calls `expand` on a composed model block that carries a `path`. It reads
config.json (plain json: no transformers on the planning path) into the catalog's `architecture:` block, counts the
parameters with the catalog's own formula (schemas.model.Architecture), and fills the rest of a catalog entry: the
name, the family, whether the tokenizer ships a chat template, and `hf_id` = the directory (or the hub id), which
is what the runtime hands to `from_pretrained`. With no `configs:` given, the planner derives the training options
(planner.derive). A hub id is looked up in the local Hugging Face cache only; nothing is downloaded.

An architecture the formula cannot count is refused, naming the file and the key: an unknown model_type, a
mixture of experts, a bias or a missing dimension the count does not model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.errors import ConfigError
from schemas.model import Architecture

# config.json key -> architecture field, for the keys every supported config.json must carry.
REQUIRED: dict[str, str] = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "max_position_embeddings": "max_position_embeddings",
}

# Keys that mark a mixture of experts: the estimator counts one dense MLP per layer.
MOE_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size", "num_experts_per_tok")


@dataclass(frozen=True)
class ModelType:
    """What the parameter count needs to know of one `model_type` beyond its config.json.

    `defaults` are transformers' class defaults for the keys a config.json may leave out (a null
    num_key_value_heads or head_dim is derived as transformers does: all heads, hidden / heads).
    `refused` are switches the count does not model; a config.json that turns one on is refused.
    """

    family: str  # schemas.model.Model.family
    norms_per_layer: int  # RMSNorms per decoder layer (hidden_size weights each)
    qkv_bias: bool  # the q, k and v projections carry a bias by construction
    defaults: dict[str, Any] = field(default_factory=dict)
    refused: tuple[str, ...] = ()


# Source: transformers 5.x models/<type>/configuration_<type>.py and modeling_<type>.py.
MODEL_TYPES: dict[str, ModelType] = {
    "llama": ModelType(
        "llama",
        norms_per_layer=2,
        qkv_bias=False,
        defaults={"num_key_value_heads": None, "head_dim": None, "tie_word_embeddings": False},
        refused=("attention_bias", "mlp_bias"),  # a bias on o_proj and on the MLP: not in the count
    ),
    "mistral": ModelType(
        "mistral",
        norms_per_layer=2,
        qkv_bias=False,
        defaults={"num_key_value_heads": 8, "head_dim": None, "tie_word_embeddings": False},
    ),
    "qwen2": ModelType(
        "qwen2",
        norms_per_layer=2,
        qkv_bias=True,  # q, k, v with bias; o_proj without
        defaults={"num_key_value_heads": 32, "head_dim": None, "tie_word_embeddings": False},
    ),
    "gemma2": ModelType(
        "gemma2",
        norms_per_layer=4,  # input, post-attention, pre- and post-feedforward
        qkv_bias=False,
        defaults={"num_key_value_heads": 4, "head_dim": 256, "tie_word_embeddings": True},
        refused=("attention_bias",),  # bias on q, k, v and o alike: o's is not in the count
    ),
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_SUPPORTED = (
    f"supported: dense decoders with model_type {', '.join(MODEL_TYPES)} "
    "(mixtures of experts and other architectures are not estimated)"
)


@dataclass(frozen=True)
class Source:
    """Where a model's files are: the folder holding config.json, and what the runtime loads."""

    folder: Path
    hf_id: str  # an absolute directory, or the hub id (the runtime loads it from the same cache)
    name: str
    namespace: str


def expand(block: dict[str, Any]) -> dict[str, Any]:
    """A composed `model:` block with a `path` -> a catalog entry (schemas.model.Model's keys)."""
    block = dict(block)
    path = block.pop("path", None)
    if path is None or str(path).strip() == "":
        raise ConfigError(
            "model=local needs the model's location",
            path="model.path",
            fix="add model.path=<directory with config.json> or model.path=<hub id in the local Hugging Face cache>",
        )
    src = locate(str(path))
    config_file = src.folder / "config.json"
    arch, family = architecture(read_json(config_file, "model.path"), config_file)
    stored = checkpoint_bytes_per_param(src.folder, arch["total_params"])
    if stored is not None:
        arch["checkpoint_bytes_per_param"] = stored
    out = {
        "name": block.pop("name", None) or src.name,
        "namespace": block.pop("namespace", None) or src.namespace,
        "hf_id": src.hf_id,
        "family": family,
        "architecture": arch,
        "configs": block.pop("configs", None) or [],
    }
    chat = block.pop("chat_template", None)
    out["chat_template"] = has_chat_template(src.folder) if chat is None else chat
    return {**out, **block}  # the rest (config, a typo) is the schema's to accept or refuse


def checkpoint_bytes_per_param(folder: Path, params: int) -> float | None:
    """Bytes a parameter takes in the folder's safetensors files (their size over the parameter count: 2.0 for bf16,
    4.0 for fp32), rounded to a quarter byte; None without safetensors files."""
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    if not size or params <= 0:
        return None
    return min(4.0, max(0.25, round(size / params * 4) / 4))


def locate(path: str) -> Source:
    """A directory (or its config.json), else a hub id found in the local Hugging Face cache."""
    given = Path(path).expanduser()
    if given.is_file() and given.name == "config.json":
        given = given.parent
    if given.is_dir():
        folder = given.resolve()
        return Source(folder=folder, hf_id=str(folder), name=_safe(folder.name), namespace="local")
    if not _HUB_ID.match(path):
        raise ConfigError(
            f"model.path {path!r} is not a directory",
            path="model.path",
            fix="pass the directory that holds the model's config.json (and its weights), or a hub id",
        )
    found = _cached_config(path)
    if found is None:
        raise ConfigError(
            f"model.path {path!r} is neither a directory nor a model in the local Hugging Face cache "
            "(planning is offline: nothing is downloaded)",
            path="model.path",
            fix=f"download its config first (hf download {path} config.json tokenizer_config.json), "
            "or pass the directory that holds config.json",
        )
    owner, _, name = path.rpartition("/")
    return Source(folder=found.parent, hf_id=path, name=_safe(name), namespace=_safe(owner or "local"))


def _cached_config(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # the planner's own dependencies do not include it
        raise ConfigError(
            f"model.path {repo_id!r} is not a directory, and looking a hub id up in the local cache needs "
            "huggingface_hub",
            path="model.path",
            fix="pass the directory that holds config.json, or install the runtime extra (pip install -e .[runtime])",
        ) from None
    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def _safe(text: str) -> str:
    """A name usable in paths (schemas.base.SafeName): other characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"
    return name.replace("..", ".")


def read_json(file: Path, key: str) -> dict[str, Any]:
    if not file.is_file():
        raise ConfigError(
            f"no config.json in {file.parent}",
            path=key,
            fix="pass the directory that holds the model's config.json (the folder save_pretrained wrote)",
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file} is not readable JSON: {exc}", path=key, fix="check the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} is not a JSON object", path=key, fix="check the file")
    return data


def architecture(config: dict[str, Any], file: Path) -> tuple[dict[str, Any], str]:
    """config.json -> (the `architecture:` block with its exact total_params, the family)."""

    def refuse(message: str, key: str, fix: str = "") -> ConfigError:
        return ConfigError(f"{file}: {message}", path=f"model.path ({file.name}: {key})", fix=fix or _SUPPORTED)

    incomplete = "use the config.json saved with the weights (save_pretrained writes every key); " + _SUPPORTED

    model_type = config.get("model_type")
    kind = MODEL_TYPES.get(model_type) if isinstance(model_type, str) else None
    if kind is None:
        got = f"model_type {model_type!r}" if model_type is not None else "no model_type"
        raise refuse(f"{got}: the planner cannot estimate this architecture", "model_type")
    for key in MOE_KEYS:
        if config.get(key):
            raise refuse(
                f"{key}={config[key]!r}: a mixture of experts; the estimator counts one dense MLP per layer", key
            )
    for key in kind.refused:
        if config.get(key):
            raise refuse(f"{key}=true adds parameters the count does not model for {model_type}", key)

    def integer(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise refuse(f"{key} is {value!r}, not a positive integer", key, incomplete)
        return value

    out: dict[str, Any] = {}
    for key, name in REQUIRED.items():
        if key not in config:
            raise refuse(f"the key {key} is missing (every {model_type} config.json has it)", key, incomplete)
        out[name] = integer(key, config[key])
    values = {key: config.get(key, default) for key, default in kind.defaults.items()}
    kv = values["num_key_value_heads"]
    out["num_kv_heads"] = out["num_heads"] if kv is None else integer("num_key_value_heads", kv)
    head_dim = values["head_dim"]
    out["head_dim"] = out["hidden_size"] // out["num_heads"] if head_dim is None else integer("head_dim", head_dim)
    tied = values["tie_word_embeddings"]
    if not isinstance(tied, bool):
        raise refuse(f"tie_word_embeddings is {tied!r}, not true or false", "tie_word_embeddings", incomplete)
    if out["num_heads"] % out["num_kv_heads"]:
        raise refuse(
            f"num_attention_heads {out['num_heads']} is not a multiple of num_key_value_heads {out['num_kv_heads']}",
            "num_key_value_heads",
        )
    out.update(tied_embeddings=tied, qkv_bias=kind.qkv_bias, norms_per_layer=kind.norms_per_layer)
    out["total_params"] = Architecture.model_construct(**out).computed_params()
    return out, kind.family


def has_chat_template(folder: Path) -> bool:
    """The tokenizer next to config.json ships a chat template: in tokenizer_config.json, or in the
    chat_template.jinja file that newer tokenizers save beside it."""
    if (folder / "chat_template.jinja").is_file():
        return True
    file = folder / "tokenizer_config.json"
    if not file.is_file():
        return False
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and bool(data.get("chat_template"))


__all__ = ["MODEL_TYPES", "ModelType", "architecture", "expand", "has_chat_template", "locate"]
