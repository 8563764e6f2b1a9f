"""A customization config for a model that has none (a model read from its config.json): derived, not published.

For every (training_type, finetuning_type) the training kinds offer, the fewest GPUs of the inventory on which the
estimator fits the method's defaults at the config's sequence length, in the shape a published option has (micro
batch 1, no sharding, no recompute), so that the plan follows it as it would follow a published option. A kind no
such layout fits is left out: its stages are searched (sharding, recompute), as on a GPU class without a config.
planner.checks.config says the config was derived, and what it lists. Pure.
"""

from __future__ import annotations

import typing

from planner import layout as layout_mod
from planner import resolve
from planner.draft import precision
from schemas.data import DataStats
from schemas.layout import LayoutRequest
from schemas.method import BY_KIND, TRAIN_KINDS, TrainMethod
from schemas.model import CustomizationConfig, TrainingOption
from schemas.spec import Spec

VERSION = "v0.0.0"  # a derived config is no published version
MAX_SEQ_LENGTH = 4096  # the published configs' sequence length (REFERENCE.md), within the model's positions
PROMPT_TEMPLATE = "{prompt} {completion}"
# The shape of a published option: what layout.from_option rebuilds from a TrainingOption.
PLAIN = LayoutRequest(micro_batch=1, sharding="none", activation_checkpointing=False)
# No data: the fit is memory only; the time (fixed costs alone) only breaks ties between layouts of one size.
NO_DATA = DataStats(source="builtin", fingerprint="derived")


def methods() -> tuple[TrainMethod, ...]:
    """Each training kind's defaults, once per finetuning_type it offers (LoRA and all weights)."""
    out: list[TrainMethod] = []
    for kind in TRAIN_KINDS:
        cls = BY_KIND[kind]
        field = cls.model_fields.get("finetuning_type")
        types = typing.get_args(field.annotation) if field is not None else (None,)
        for ft in types:
            out.append(cls(**({"finetuning_type": ft} if ft else {})))  # type: ignore[arg-type]
    return tuple(out)


METHODS: tuple[TrainMethod, ...] = methods()
PAIRS: tuple[tuple[str, str], ...] = tuple(dict.fromkeys((m.training_type, m.finetuning_type) for m in METHODS))


def urn(spec: Spec) -> str:
    model = spec.model
    return f"{model.namespace}/{model.name}@{VERSION}+{spec.inventory.gpu.classes[0]}"


def config(spec: Spec) -> CustomizationConfig:
    """The derived config: this inventory's GPU class, the model's sequence length, an option per kind that fits."""
    seq = min(MAX_SEQ_LENGTH, spec.model.architecture.max_position_embeddings)
    options: dict[tuple[str, str], TrainingOption] = {}
    for method in METHODS:
        pair = (method.training_type, method.finetuning_type)
        if pair not in options and (option := fewest_gpus(spec, method, seq)) is not None:
            options[pair] = option
    return CustomizationConfig(
        urn=urn(spec),
        max_seq_length=seq,
        precision="bf16-mixed",
        prompt_template=PROMPT_TEMPLATE,
        training_options=tuple(options.values()),
    )


def fewest_gpus(spec: Spec, method: TrainMethod, seq: int) -> TrainingOption | None:
    """The option on the fewest GPUs (one node before several) where the estimate fits, or None."""
    inv = spec.inventory
    ctx = layout_mod.Context(
        arch=spec.model.architecture,
        method=method,
        inventory=inv,
        stats=NO_DATA,
        prior=spec.knowledge.estimator,
        precision=precision(spec, None),
        seq=seq,
        headroom=spec.knowledge.lints.memory_headroom,
        engine=spec.knowledge.engine,
        attention=resolve.attention(spec),
    )
    sizes = sorted(
        {(1, g) for g in _pow2(inv.gpus_per_node)} | {(n, inv.gpus_per_node) for n in range(1, inv.nodes + 1)}
    )
    for nodes, per_node in sorted(sizes, key=lambda s: s[0] * s[1]):
        found = layout_mod.search(ctx, PLAIN.model_copy(update={"nodes": nodes, "gpus_per_node": per_node})).chosen
        if found is not None:
            s = found.shape
            return TrainingOption(
                training_type=method.training_type,
                finetuning_type=method.finetuning_type,
                num_gpus=s.gpus_per_node,
                num_nodes=s.nodes,
                tensor_parallel_size=s.tp,
                pipeline_parallel_size=s.pp,
                micro_batch_size=s.micro_batch,
            )
    return None


def _pow2(limit: int) -> list[int]:
    return [1 << i for i in range(limit.bit_length()) if 1 << i <= limit]


__all__ = ["PAIRS", "config", "fewest_gpus", "urn"]
