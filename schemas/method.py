"""The rungs of the ladder as a discriminated union keyed by `kind`, with their hyperparameters.

Defaults follow the seed: LoRA rank 8, alpha = rank, dropout 0.1, lr 1e-4; early stopping
after 10 epochs without a 0.001 improvement in val_loss.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.base import MAX_LR, MAX_STEPS, MAX_TOKENS, Frozen, accepts

# the verifiable rewards runtime.rewards registers (a test keeps the two lists equal)
REWARD_NAMES: tuple[str, ...] = ("numeric_match", "format", "valid_json")
# The training kinds: a new method adds its kind here, its class below, planner/methods/<kind>.py and
# runtime/recipes/<kind>.py (tests keep the four equal).
TrainKind = Literal["lora", "sft", "dpo", "kto", "grpo"]
TRAIN_KINDS: tuple[str, ...] = get_args(TrainKind)
MethodKind = Literal["auto", "prompting", "rag", TrainKind]


class LoraParams(Frozen):
    """LoRA adapter settings (NeMo names)."""

    adapter_dim: int = Field(8, ge=1, le=65_536, description="LoRA rank r; a power of two.")
    alpha: int | None = Field(None, ge=1, le=1_048_576, description="LoRA alpha; null means alpha = adapter_dim.")
    adapter_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = Field(
        ("all-linear",), description="Module names to adapt, or 'all-linear' (q,k,v,o,gate,up,down)."
    )
    quantization: Literal["4bit"] | None = Field(
        None,
        description="QLoRA: 4bit loads the frozen base's decoder linear weights as bitsandbytes NF4 with double "
        "quantization, computing in the plan's precision (bf16 or fp32); embeddings, norms and lm_head stay "
        "unquantized (fp32 once prepared for k-bit training); no tensor parallel (FSDP splits it). Needs a CUDA "
        "GPU and the bitsandbytes package (pip install '.[qlora]'); a CPU plan refuses it. Null: the base in the "
        "compute dtype (plain LoRA). Only with finetuning_type lora.",
    )

    @model_serializer(mode="wrap")
    def _without_no_quantization(self, handler: SerializerFunctionWrapHandler) -> Any:
        # an unquantized LoRA serialises (and hashes into the plan id) as it did before the key existed
        data = handler(self)
        if isinstance(data, dict) and data.get("quantization", 0) is None:
            data.pop("quantization")
        return data

    @property
    def effective_alpha(self) -> int:
        return self.alpha if self.alpha is not None else self.adapter_dim


class EarlyStopping(Frozen):
    """Stop when val_loss has not improved by min_delta for `patience` evaluations."""

    patience: int = Field(10, ge=1, le=100_000)
    min_delta: float = Field(0.001, ge=0.0, le=1e6)


class Replay(Frozen):
    """General text mixed into every training batch, so the model keeps what it knew (forgetting).

    Each micro batch of task records gets ``ratio`` times as many records drawn from ``data``, with the
    loss on all their tokens. Steps per epoch, validation and early stopping stay the task's."""

    data: str = Field(
        description="builtin:<name> (the shipped conf/samples/<name>/corpus.txt: builtin:general is "
        "tiny-llama's pre-training text), or the absolute path of a .txt (one document per line) or .jsonl "
        "({text}) file."
    )
    ratio: float = Field(1.0, gt=0, le=8, description="Replay records per task record in each batch.")

    @property
    def is_builtin(self) -> bool:
        return self.data.startswith("builtin:")

    @model_validator(mode="after")
    def _named(self) -> Replay:
        if self.is_builtin:
            rest = self.data.removeprefix("builtin:")
            if not rest or "/" in rest or ".." in rest:
                raise ValueError(f"builtin replay text is named, not a path: builtin:<name>, got {self.data!r}")
        elif not self.data.endswith((".txt", ".jsonl")):
            raise ValueError(f"replay data {self.data!r}: use builtin:<name>, a .txt or a .jsonl file")
        elif not self.data.startswith("/"):
            raise ValueError(
                f"replay data {self.data!r}: give the absolute path (the stages run from the "
                "bundle folder, not from where you plan)"
            )
        return self


class _Train(Frozen):
    """Hyperparameters every training rung shares (NeMo Customizer names)."""

    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(8, ge=1, le=16_777_216, description="Global batch size in examples.")
    learning_rate: float = Field(1e-4, gt=0, le=MAX_LR)
    min_learning_rate: float | None = Field(None, ge=0, le=MAX_LR, description="Cosine floor; null means 0.1 x lr.")
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS)
    weight_decay: float = Field(0.0, ge=0, le=10)
    seed: int = Field(42, ge=0, le=2**32 - 1)
    max_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Stop after this many optimizer steps.")
    val_check_interval: float = Field(1.0, gt=0, le=10_000, description="Validate every N epochs (fractions allowed).")
    sequence_packing: bool = False
    max_seq_length: int | None = Field(
        None,
        gt=0,
        le=MAX_TOKENS,
        description="Null: long enough for the longest record, capped by the config's max_seq_length.",
    )
    micro_batch_size: int | None = Field(None, ge=1, le=65_536, description="Null: chosen by the layout.")
    optimizer: Literal["adamw", "adamw_8bit", "adamw_bf16", "sgd"] = "adamw"
    activation_checkpointing: bool | None = Field(None, description="Null: the layout decides.")
    sharding: Literal["auto", "none", "zero1", "zero2", "fsdp"] = "auto"
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    lora: LoraParams = Field(default_factory=LoraParams)
    replay: Replay | None = Field(
        None,
        description="General text mixed into each batch against forgetting "
        "(supervised stages: LoRA, full SFT, the SFT stage before DPO or GRPO).",
    )

    @property
    def effective_min_lr(self) -> float:
        return self.min_learning_rate if self.min_learning_rate is not None else 0.1 * self.learning_rate

    @model_validator(mode="after")
    def _quantized_lora_only(self) -> _Train:
        # a quantized base is frozen: only adapters train on it (full fine-tuning of NF4 weights does not exist)
        ft = getattr(self, "finetuning_type", "lora")
        if self.lora.quantization is not None and ft != "lora":
            raise ValueError(
                f"lora.quantization={self.lora.quantization} quantizes a frozen base for LoRA adapters; "
                f"finetuning_type {ft} trains every weight: remove lora.quantization or use finetuning_type lora"
            )
        return self


class Lora(_Train):
    """Supervised fine-tuning of LoRA adapters on a frozen base."""

    kind: Literal["lora"] = "lora"

    @property
    def training_type(self) -> str:
        return "sft"

    @property
    def finetuning_type(self) -> str:
        return "lora"


class Sft(_Train):
    """Supervised fine-tuning of all weights."""

    kind: Literal["sft"] = "sft"
    learning_rate: float = Field(1e-5, gt=0, le=MAX_LR)

    @property
    def training_type(self) -> str:
        return "sft"

    @property
    def finetuning_type(self) -> str:
        return "all_weights"


class _Preference(_Train):
    """What the preference methods (DPO, KTO) share: a policy judged against a frozen reference, on an SFT base."""

    finetuning_type: Literal["lora", "all_weights"] = "all_weights"
    learning_rate: float = Field(5e-6, gt=0, le=MAX_LR)
    epochs: int = Field(1, ge=1, le=10_000)
    beta: float = Field(0.1, gt=0, le=100, description="KL penalty against the reference (ref_policy_kl_penalty).")
    reference: Literal["auto", "copy", "adapters_disabled", "precomputed"] = Field(
        "auto", description="auto: adapters disabled under LoRA, a frozen copy for all weights."
    )
    sft_base: str | None = Field(None, description="An SFT-tuned base to start from; null compiles an SFT stage first.")

    @property
    def effective_reference(self) -> str:
        if self.reference != "auto":
            return self.reference
        return "adapters_disabled" if self.finetuning_type == "lora" else "copy"

    @model_validator(mode="after")
    def _reference_matches(self) -> _Preference:
        if self.reference == "adapters_disabled" and self.finetuning_type != "lora":
            raise ValueError("reference 'adapters_disabled' needs finetuning_type 'lora'")
        _no_replay(self)
        return self


class Dpo(_Preference):
    """Direct preference optimisation on prompt/chosen/rejected pairs, on an SFT base."""

    kind: Literal["dpo"] = "dpo"
    sft_loss_weight: float = Field(0.0, ge=0, le=100)
    preference_loss_weight: float = Field(1.0, ge=0, le=100)

    @property
    def training_type(self) -> str:
        return "dpo"


class Kto(_Preference):
    """Kahneman-Tversky optimisation on unpaired feedback: each answer alone, labelled desirable or not (pairs of
    preference data count as one of each), on an SFT base."""

    kind: Literal["kto"] = "kto"
    desirable_weight: float = Field(1.0, gt=0, le=100, description="Loss weight of desirable answers (lambda_D).")
    undesirable_weight: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Loss weight of undesirable answers (lambda_U); keep lambda_D x desirable count / "
        "(lambda_U x undesirable count) within 1 to 4/3.",
    )

    @property
    def training_type(self) -> str:
        return "kto"


class Grpo(_Train):
    """Group relative policy optimisation with verifiable rewards."""

    kind: Literal["grpo"] = "grpo"
    finetuning_type: Literal["lora", "all_weights"] = "all_weights"
    learning_rate: float = Field(1e-6, gt=0, le=MAX_LR)
    epochs: int = Field(1, ge=1, le=10_000)
    num_generations_per_prompt: int = Field(8, ge=2, le=1024)
    max_completion_length: int = Field(256, gt=0, le=MAX_TOKENS)
    kl_beta: float = Field(0.0, ge=0, le=100, description="KL coefficient; > 0 adds a reference model.")
    temperature: float = Field(1.0, gt=0, le=10)
    rewards: tuple[str, ...] = Field(
        ("numeric_match",),
        min_length=1,
        description="Verifiable rewards, summed: " + ", ".join(REWARD_NAMES) + ", or regex:PATTERN.",
    )
    generation_backend: Literal["transformers", "vllm"] = "transformers"
    cold_start_sft: bool = Field(
        False,
        description="Train an SFT stage on prompt -> 'Answer: <answer>' first (a cold start, as DeepSeek-R1 "
        "did before RL), for a base that never samples a right answer: with every reward 0, GRPO has no signal.",
    )

    @property
    def training_type(self) -> str:
        return "grpo"

    @model_validator(mode="after")
    def _supervised_only(self) -> Grpo:
        _no_replay(self)
        return self

    @field_validator("rewards")
    @classmethod
    def _known_rewards(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if name.startswith("regex:"):
                try:
                    re.compile(name.removeprefix("regex:"))
                except re.error as exc:
                    raise ValueError(f"reward {name!r}: bad regular expression: {exc}") from None
            elif name not in REWARD_NAMES:
                close = difflib.get_close_matches(name, REWARD_NAMES, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown reward {name!r}{hint} (known: {', '.join(REWARD_NAMES)}, regex:PATTERN)")
        return names


def _no_replay(method: _Train) -> None:
    if method.replay is not None:
        raise ValueError(
            f"replay mixes text into supervised batches; a {getattr(method, 'kind', 'preference')} stage has none: "
            "remove "
            "replay (for the SFT base of a DPO pipeline, set it in the model config's sft defaults)"
        )


class Prompting(Frozen):
    """No training: a prompt (and few-shot examples) evaluated against the task metric."""

    kind: Literal["prompting"] = "prompting"
    few_shot: int = Field(3, ge=0, le=256)
    system_prompt: str | None = None


class Rag(Frozen):
    """No training: retrieve from the documents, answer with the base model."""

    kind: Literal["rag"] = "rag"
    top_k: int = Field(4, ge=1, le=1000)
    chunk_tokens: int = Field(256, gt=0, le=MAX_TOKENS)
    retriever: Literal["bm25", "embedding"] = "bm25"


class Auto(Frozen):
    """Let the ladder choose the cheapest rung that can close the gap. Training keys set here
    (`method.learning_rate=5e-5`, `method.lora.adapter_dim=16`) override the chosen rung's recipe and keep
    the rest of it; a key the chosen rung does not have is reported and ignored."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True, protected_namespaces=())

    kind: Literal["auto"] = "auto"

    @model_validator(mode="after")
    def _training_keys(self) -> Auto:
        extra = self.model_extra or {}
        if not extra:
            return self
        kinds = [BY_KIND[k] for k in TRAIN_KINDS]
        known = sorted({name for cls in kinds for name in cls.model_fields if name != "kind"})
        for key in extra:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"method.{key} is not a training key{hint} (method=auto takes the keys of lora, sft, dpo and grpo)"
                )
        first: PydanticCustomError | None = None
        for cls in kinds:  # valid for at least one rung that has every key given
            if not set(extra) <= set(cls.model_fields):
                continue
            try:
                cls.model_validate(dict(extra))
                return self
            except ValidationError as exc:
                wrong = [e for e in exc.errors() if e["type"] != "missing"]
                if not wrong:
                    return self  # a part of a block (replay.ratio): the recommended recipe may hold the rest
                first = first or _field_error(cls, wrong[0])
        raise first or ValueError(f"method overrides {sorted(extra)}: no rung has all of these keys together")


def _field_error(cls: type[Frozen], err: Any) -> PydanticCustomError:
    """A rung's error about an override, as an error of method=auto naming the key (ctx field) and what it
    accepts (ctx accepts), so the reader points at method.<key> with the rung's range."""
    names = [str(p) for p in err["loc"] if isinstance(p, str)]
    model: Any = cls
    field = None
    for name in names:
        field = getattr(model, "model_fields", {}).get(name)
        if field is None:
            break
        model = field.annotation
    ctx = {"field": ".".join(names), "msg": err["msg"]}
    if field is not None:
        ctx["accepts"] = accepts(field)
    return PydanticCustomError("method_override", "{msg}", ctx)


Method = Annotated[Auto | Prompting | Rag | Lora | Sft | Dpo | Kto | Grpo, Field(discriminator="kind")]
TrainMethod = Lora | Sft | Dpo | Kto | Grpo

BY_KIND: dict[str, type[Frozen]] = {
    "auto": Auto,
    "prompting": Prompting,
    "rag": Rag,
    "lora": Lora,
    "sft": Sft,
    "dpo": Dpo,
    "kto": Kto,
    "grpo": Grpo,
}
