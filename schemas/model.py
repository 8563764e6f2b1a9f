"""The model catalog: architecture facts and versioned customization configs (NeMo-style URNs)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from schemas.base import Frozen, SafeName
from schemas.method import TrainKind

TrainingType = Literal["sft", "dpo", "kto", "grpo", "distillation"]
FinetuningType = Literal["lora", "all_weights", "lora_merged"]

_URN = re.compile(
    r"^(?P<namespace>[A-Za-z0-9][\w.-]*)/(?P<name>[A-Za-z0-9][\w.-]*)"
    r"(?:@(?P<version>v\d+\.\d+\.\d+))?(?:\+(?P<gpu_class>[A-Za-z0-9]+))?$"
)


class URN(Frozen):
    """`namespace/name@version+gpu_class`, e.g. `meta/llama-3.2-1b-instruct@v1.0.0+A100`."""

    namespace: str
    name: str
    version: str | None
    gpu_class: str | None

    @classmethod
    def parse(cls, text: str) -> URN:
        match = _URN.match(text)
        if not match:
            raise ValueError(
                f"{text!r} is not a config URN: expected namespace/name@vX.Y.Z+GPUCLASS, "
                "e.g. meta/llama-3.2-1b-instruct@v1.0.0+A100"
            )
        return cls(**match.groupdict())

    def __str__(self) -> str:
        out = f"{self.namespace}/{self.name}"
        if self.version:
            out += f"@{self.version}"
        if self.gpu_class:
            out += f"+{self.gpu_class}"
        return out


class Architecture(Frozen):
    """Facts from the model's config.json; `total_params` is checked against the formula."""

    vocab_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)
    tied_embeddings: bool
    qkv_bias: bool = False
    norms_per_layer: int = Field(2, ge=1)
    total_params: int = Field(gt=0, description="The published parameter count.")
    checkpoint_bytes_per_param: float = Field(
        2.0,
        gt=0,
        le=4,
        description="Bytes a parameter takes in the checkpoint files (2: bf16, how published checkpoints ship; 4: "
        "fp32). Loading maps the files beside the weights, which sets a CPU run's set-up peak.",
    )

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(d_in, d_out) of each linear layer in one decoder block, keyed by module name."""
        h, i = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def params_per_layer(self) -> int:
        linear = sum(d_in * d_out for d_in, d_out in self.linear_shapes().values())
        bias = self.q_dim + 2 * self.kv_dim if self.qkv_bias else 0
        return linear + bias + self.norms_per_layer * self.hidden_size

    def embedding_params(self) -> int:
        """Input embedding plus an untied lm_head."""
        one = self.vocab_size * self.hidden_size
        return one if self.tied_embeddings else 2 * one

    def computed_params(self) -> int:
        return self.num_layers * self.params_per_layer() + self.embedding_params() + self.hidden_size

    @model_validator(mode="after")
    def _total_matches_formula(self) -> Architecture:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        computed = self.computed_params()
        if computed != self.total_params:
            raise ValueError(
                f"total_params {self.total_params:,} disagrees with the architecture ({computed:,} from "
                "layers x (attention + gated MLP + norms) + embeddings): check the numbers against config.json"
            )
        return self


class TrainingOption(Frozen):
    """One published way to train a config: method, GPUs and the parallel layout."""

    training_type: TrainingType
    finetuning_type: FinetuningType
    num_gpus: int = Field(ge=1, description="GPUs per node.")
    num_nodes: int = Field(1, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    micro_batch_size: int = Field(1, ge=1)


class CustomizationConfig(Frozen):
    """A versioned customization config: the URN, sequence length, precision, template, options."""

    urn: str
    max_seq_length: int = Field(gt=0)
    precision: Literal["bf16-mixed", "bf16", "fp16-mixed", "fp32"]
    prompt_template: str = Field(description="How a record becomes text: '{prompt} {completion}'.")
    training_options: tuple[TrainingOption, ...] = ()
    defaults: dict[TrainKind, dict[str, Any]] = Field(
        default_factory=dict,
        description="Hyperparameters this config recommends per method kind, used when method=auto "
        "chooses that rung (an explicit method= keeps its own values).",
    )

    @model_validator(mode="after")
    def _urn_is_complete(self) -> CustomizationConfig:
        from schemas.method import BY_KIND

        for kind, values in self.defaults.items():
            BY_KIND[kind].model_validate(values)  # a typo in the catalog fails here, with the key
        urn = URN.parse(self.urn)
        if not urn.version or not urn.gpu_class:
            raise ValueError(f"catalog URN {self.urn!r} must carry @version and +gpu_class")
        if "{prompt}" not in self.prompt_template or "{completion}" not in self.prompt_template:
            raise ValueError("prompt_template must contain {prompt} and {completion}")
        return self

    @property
    def parsed(self) -> URN:
        return URN.parse(self.urn)

    def option(self, training_type: str, finetuning_type: str) -> TrainingOption | None:
        for opt in self.training_options:
            if (opt.training_type, opt.finetuning_type) == (training_type, finetuning_type):
                return opt
        return None


class Model(Frozen):
    """A catalog entry, or a model read from its own config.json (model=local model.path=<directory or hub id>).

    Where the weights come from, the architecture, the customization configs; planner.hf_config fills them for
    model=local."""

    name: SafeName
    namespace: SafeName
    hf_id: str = Field(
        description="Hub id, or a local directory with config.json and weights (model=local sets it from model.path)."
    )
    family: Literal["llama", "mistral", "qwen2", "gemma2"]
    builder: Literal["tiny"] | None = Field(
        None,
        description="tiny: the project builds this model itself on the first run (runtime.tiny: a tokenizer and a "
        "briefly pre-trained model from the shipped texts, cached) instead of loading hf_id.",
    )
    chat_template: bool = Field(
        False,
        description="The tokenizer ships a chat template (instruct models): training and evaluation format "
        "records through it. False: the customization config's plain prompt_template.",
    )
    architecture: Architecture
    config: str | None = Field(
        None,
        description="Customization config URN to use (namespace/name@version+gpu_class); "
        "null picks the one matching the inventory's GPU class.",
    )
    configs: tuple[CustomizationConfig, ...] = Field(
        (),
        description="The customization configs (published, or this project's). Empty (a model read from its "
        "config.json with model=local): the planner derives one for the inventory's GPU from its own memory "
        "estimate, and the report says so.",
    )

    @model_validator(mode="after")
    def _config_is_listed(self) -> Model:
        if self.config is not None and not self.configs:
            raise ValueError(
                f"config {self.config!r} names a customization config, but the model lists none (configs is "
                "empty): drop model.config to use the derived one, or add a configs: list"
            )
        return self

    @property
    def urns(self) -> list[str]:
        return [c.urn for c in self.configs]

    def find_config(self, urn: str) -> CustomizationConfig | None:
        return next((c for c in self.configs if c.urn == urn), None)
