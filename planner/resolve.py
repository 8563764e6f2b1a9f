"""The only place a training method's values are resolved, once, for plan.json.

Order, lowest first: the schema's defaults, the customization config's recommended values for that
rung (`defaults:` in the model's catalog entry), the user's overrides (only the keys they set, also
under method=auto). Then what the planner derives: the micro batch, sharding and activation
checkpointing from the layout, the sequence length from the data, alpha and the cosine floor from
their rules, builtin file names as absolute paths. Every value records where it came from.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from planner.methods import rules
from planner.tokens import TokenCounter, token_counter
from schemas.data import DataStats
from schemas.layout import AttentionImplementation
from schemas.method import BY_KIND, TRAIN_KINDS, TrainMethod
from schemas.model import CustomizationConfig
from schemas.plan import Layout, PromptFormat
from schemas.spec import Spec

SEQ_MULTIPLE = 8  # sequence lengths round up to a multiple of 8 (tensor-core friendly, a little slack)


@dataclass(frozen=True)
class Recipe:
    """A method's resolved values and where each came from (dotted key -> override | recommended | default |
    derived). `ignored`: overrides given under method=auto that this rung does not have."""

    method: TrainMethod
    sources: dict[str, str]
    ignored: tuple[str, ...] = ()


def user_overrides(spec: Spec) -> dict[str, Any]:
    """The method keys the user (or a goal) set, nested as given, without `kind`."""
    method = spec.method
    if method.kind == "auto":
        return dict(method.model_extra or {})
    if method.kind not in TRAIN_KINDS:
        return {}
    return method.model_dump(mode="json", exclude_unset=True, exclude={"kind"})


def recommended(kind: str, config: CustomizationConfig | None) -> dict[str, Any]:
    if config is None:
        return {}
    return dict(config.defaults.get(cast(Any, kind), {}))  # keyed by the training kinds' Literal


def recipe(kind: str, spec: Spec, config: CustomizationConfig | None, *, overrides: bool = True) -> Recipe:
    """The values a `kind` stage trains with, before the layout. `overrides=False` for a stage the user's
    method does not describe (the SFT base of a DPO pipeline, a GRPO cold start)."""
    cls = BY_KIND[kind]
    fields = set(cls.model_fields)
    user = user_overrides(spec) if overrides and spec.method.kind in (kind, "auto") else {}
    ignored = tuple(sorted(f"method.{k}" for k in user if k not in fields))
    user = {k: v for k, v in user.items() if k in fields}
    rec = recommended(kind, config)
    merged = _merge(rec, user)
    merged["kind"] = kind
    try:
        method = cls.model_validate(merged)
    except ValidationError:
        # An override that suits another rung but not this one (method=auto): the recommendation stands, the
        # override is reported as ignored. A method the user pinned was validated with the spec already.
        method = cls.model_validate({**rec, "kind": kind})
        ignored = tuple(sorted({*ignored, *(f"method.{k}" for k in user)}))
        user = {}
    user_keys, rec_keys = set(_flatten(user)), set(_flatten(rec))
    sources = {
        key: "override" if key in user_keys else "recommended" if key in rec_keys else "default"
        for key in _flatten(method.model_dump(mode="json", exclude={"kind"}))
    }
    return Recipe(method=method, sources=sources, ignored=ignored)  # type: ignore[arg-type]


def finalize(r: Recipe, layout: Layout, seq: int, replay_path: str | None) -> Recipe:
    """The recipe with every value the trainer reads filled in from the layout and the data: never null,
    never auto."""
    m = r.method
    derived: dict[str, Any] = {
        "min_learning_rate": m.effective_min_lr,
        "max_seq_length": seq,
        "micro_batch_size": layout.micro_batch,
        "activation_checkpointing": layout.activation_checkpointing,
        "sharding": layout.sharding,
        "lora.alpha": m.lora.effective_alpha,
    }
    if m.replay is not None and replay_path is not None:
        derived["replay.data"] = replay_path
    derived.update(rules(m).derived(m))
    data = m.model_dump(mode="json")
    sources = dict(r.sources)
    before = r.method.model_dump(mode="json")
    for key, value in derived.items():
        # a user's value is its own effective value (lr floor, alpha, a pinned max_seq_length; the layout honours
        # micro batch, sharding and checkpointing as pins): what changes here is only resolved, never replaced
        _set(data, key, value)
        if _get(before, key) != value and r.sources.get(key) != "override":
            sources[key] = "derived"
    method = type(m).model_validate(data)
    return Recipe(method=method, sources=sources, ignored=r.ignored)


def attention(spec: Spec) -> AttentionImplementation:
    """layout.attention_implementation, resolved: auto is flash_attention_2 on a GPU whose compute capability
    flash-attn 2 supports (knowledge engine.flash_attention_2), sdpa elsewhere (a CPU, an older or newer GPU,
    one whose catalog entry has no compute capability). Whether flash_attn is installed does not decide it: the
    compute nodes are not the planning machine (planner.checks.attention warns when this one lacks it)."""
    asked = spec.layout.attention_implementation
    if asked != "auto":
        return asked
    cc = spec.inventory.gpu.compute_capability
    return "flash_attention_2" if cc is not None and cc in spec.knowledge.engine.flash_attention_2 else "sdpa"


def prompt_format(spec: Spec, config: CustomizationConfig | None) -> PromptFormat:
    """Instruct models train and are evaluated through their tokenizer's chat template; others through the
    config's plain template."""
    if spec.model.chat_template:
        return PromptFormat(kind="chat_template", template="tokenizer")
    return PromptFormat(kind="plain", template=config.prompt_template if config else "{prompt} {completion}")


def template_tokens(spec: Spec, prompt: PromptFormat) -> int:
    """Tokens a prompt format adds to each record: a chat template's prior; a plain template's fixed text, counted
    like the records (planner.tokens)."""
    prior = spec.knowledge.estimator
    if prompt.kind == "chat_template":
        return prior.chat_template_tokens
    return token_counter(spec).text(prompt.template.replace("{prompt}", "").replace("{completion}", ""))


def seq_cap(spec: Spec, method: TrainMethod, config: CustomizationConfig | None) -> int:
    """The most a sequence may hold: the user's max_seq_length, else the config's, else 4096, and never more
    than the model's positions (a larger user value is an error finding, not silently lowered)."""
    if method.max_seq_length:
        return method.max_seq_length
    positions = spec.model.architecture.max_position_embeddings
    return min(config.max_seq_length if config else 4096, positions)


SPECIAL_TOKENS = 2  # the BOS and EOS a tokenizer puts around each record


def widest_batch(spec: Spec, stats: DataStats, method: TrainMethod, prompt: PromptFormat, seq: int) -> int:
    """Tokens of the widest micro batch: the trainers pad each batch to its longest record, so the peak comes with
    the longest one, its tokens (counted with the model's tokenizer, or chars/4, or declared) + the prompt format +
    BOS and EOS, without seq_length's margin (which keeps the estimate's error from cutting records). 0 (as wide as
    seq) with packing, whose rows are all full, or when the data's lengths are unknown. For GRPO this is the prompt;
    the estimator adds the completion."""
    if method.sequence_packing or not stats.training.tokens_max:
        return 0
    return min(seq, stats.training.tokens_max + template_tokens(spec, prompt) + SPECIAL_TOKENS)


def replay_tokens(path: str | None, tokens: TokenCounter) -> float:
    """Mean tokens of a replay document (counted like the records; + BOS and EOS: runtime.replay.encode);
    0.0 when the file is not readable here (the estimate then gives each document a row of its own)."""
    if path is None:
        return 0.0
    try:
        st = Path(path).stat()
    except OSError:
        return 0.0
    return _replay_tokens(path, st.st_mtime_ns, st.st_size, tokens)


@functools.lru_cache(maxsize=16)
def _replay_tokens(path: str, mtime_ns: int, size: int, tokens: TokenCounter) -> float:  # read once per version
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 0.0
    texts = []
    for line in lines:
        if path.endswith(".jsonl"):
            try:
                record = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
            line = record.get("text", "") if isinstance(record, dict) and isinstance(record.get("text"), str) else ""
        if line.strip():
            texts.append(line)
    if not texts:
        return 0.0
    counts = tokens.texts(texts) if tokens.tokenizer else [len(t) for t in texts]
    mean = sum(counts) / len(counts)
    return (mean if tokens.tokenizer else mean / tokens.chars_per_token) + SPECIAL_TOKENS


def seq_length(
    spec: Spec,
    stats: DataStats,
    method: TrainMethod,
    config: CustomizationConfig | None,
    prompt: PromptFormat,
    pinned: bool,
) -> int:
    """One rule for the trainer, validate_data and the estimator: cover the longest record (its estimated
    tokens x the knowledge's margin, plus the prompt format), capped; packing fills the cap; a user's value
    stands as given."""
    cap = seq_cap(spec, method, config)
    if pinned or method.sequence_packing or not stats.training.tokens_max:
        return cap
    need = stats.training.tokens_max * spec.knowledge.estimator.seq_margin + template_tokens(spec, prompt)
    need += rules(method).completion_tokens(method)  # GRPO: room for the sampled completion
    return min(cap, max(SEQ_MULTIPLE, math.ceil(need / SEQ_MULTIPLE) * SEQ_MULTIPLE))


def truncated(spec: Spec, stats: DataStats, seq: int, prompt: PromptFormat) -> tuple[int, bool]:
    """(training records estimated longer than `seq`, exact?)."""
    room = seq - template_tokens(spec, prompt)
    return stats.training.longer_than(max(0, room))


# ----------------------------------------------------------------------------- nested dict helpers


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _merge(low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)  # type: ignore[assignment]
    return d


def _set(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        d = d.setdefault(part, {})
    d[leaf] = value


__all__ = ["Recipe", "finalize", "prompt_format", "recipe", "seq_cap", "seq_length", "truncated", "user_overrides"]
