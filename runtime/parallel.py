"""How a training stage spreads its model over the launched processes, and the model load for that layout.

The plan's layout (each training stage has its own) says tensor parallel and sharding; torchrun says how many
processes there are. Parallel turns the two into one of: one process or DDP, FSDP2 through accelerate (GPUs),
or a model sharded at load time by transformers (tensor parallel, and FSDP2 on CPU). load_for_training loads
the starting weights for it.
"""

from __future__ import annotations

from typing import Any

from runtime.context import RunContext, StageFailed, world_size
from schemas.plan import Layout, Plan


def stage_layout(ctx: RunContext) -> Layout:
    """The stage's own layout (each training stage has one); the plan's for a stage without."""
    return ctx.stage.layout or ctx.plan.layout


class Parallel:
    """How this launch spreads the model: DDP (or one process), accelerate FSDP2, or sharded at load time."""

    def __init__(self, layout: Layout):
        import torch

        world = world_size()
        self.world, self.tp, self.fsdp = world, 1, 1
        self.cuda = torch.cuda.is_available()
        self.attention = layout.attention_implementation  # the kernel the stage's layout names (and priced)
        self.reshard = False
        if world == 1:
            return
        tp = layout.tensor_parallel
        if world % tp:
            raise StageFailed(
                f"layout.tensor_parallel {tp} does not divide the {world} processes; launch with "
                f"torchrun --nproc-per-node a multiple of {tp}"
            )
        if tp > 1 and not self.cuda:
            raise StageFailed(
                f"layout.tensor_parallel {tp} on CPU: transformers shards the model (DistributedConfig(tp_size={tp}) "
                "loads, and forward/backward match the unsharded model on gloo), but the Trainer then passes "
                f"accelerate a ParallelismConfig(tp_size={tp}), which accelerate 1.15 accepts only for FSDP2, "
                'GPU-like or DeepSpeed backends, not MULTI_CPU ("ParallelismConfig is only compatible '
                "DistributedType.FSDP (version 2) or DistributedType.Multi{Device} or DistributedType.DEEPSPEED, "
                'but got DistributedType.MULTI_CPU"); on CPU recompile with layout.tensor_parallel=1 (DDP, or '
                "layout.sharding=fsdp for FSDP2)"
            )
        self.tp = tp
        if layout.sharding in ("fsdp", "zero1", "zero2"):
            self.fsdp = world // tp
        self.reshard = layout.sharding == "fsdp"  # zero1/2: keep parameters gathered (SHARD_GRAD_OP-like)

    @property
    def data_parallel(self) -> int:
        """Processes that each see different examples (tensor-parallel ranks share theirs)."""
        return max(1, self.world // self.tp)

    @property
    def accelerate_fsdp(self) -> bool:
        """FSDP2 through accelerate (TrainingArguments.fsdp): GPUs only. accelerate 1.15 turns FSDP on only for
        GPU-like backends; on MULTI_CPU (gloo) it drops the plugin and silently runs DDP."""
        return self.fsdp > 1 and self.tp == 1 and self.cuda

    @property
    def sharded_at_load(self) -> bool:
        """transformers' DistributedConfig: tensor parallel, and FSDP2 on CPU."""
        return self.tp > 1 or (self.fsdp > 1 and not self.accelerate_fsdp)

    def describe(self) -> str:
        parts = []
        if self.tp > 1:
            parts.append(f"TP {self.tp}")
        if self.fsdp > 1:
            parts.append(f"FSDP2 over {self.fsdp} ({'accelerate' if self.accelerate_fsdp else 'DistributedConfig'})")
        elif self.world > 1 and self.tp < self.world:
            parts.append(f"DDP x{self.world // self.tp}")
        return ", ".join(parts)


def load_for_training(plan: Plan, source: str, lora: bool, par: Parallel, quantization: str | None = None) -> Any:
    """The starting weights from `source` (a folder or a hub name), laid out as `par` says; with quantization
    (method.lora.quantization=4bit) a QLoRA base: NF4 linear weights, prepared for k-bit training."""
    import torch
    from transformers import AutoModelForCausalLM

    from runtime.models import attention_implementation, torch_dtype

    # LoRA keeps a frozen base in the compute dtype; all weights keep fp32 master weights (autocast does bf16).
    dtype = torch_dtype(plan) if lora else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attention_implementation(par.attention)}
    if quantization is not None:
        kwargs["quantization_config"] = quantization_config(quantization, dtype, par)
    if par.sharded_at_load:
        # transformers' own distributed loading: the model's tp plan over the "tp" mesh dimension and FSDP2
        # (fully_shard) over "fsdp", applied as the weights load; the rest of the processes replicate.
        from transformers.distributed import DistributedConfig

        replicas = par.world // (par.tp * par.fsdp)
        kwargs["distributed_config"] = DistributedConfig(tp_size=par.tp, fsdp_size=par.fsdp, dp_replicate_size=replicas)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise StageFailed(f"cannot load {plan.spec.model.name} from {source!r}: {exc}") from None
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        # casts the unquantized weights (embeddings, norms, lm_head) to fp32, as the plan's estimate prices them;
        # activation checkpointing stays the layout's
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(plan.layout.activation_checkpointing)
        )
    return model


def quantization_config(quantization: str, dtype: Any, par: Parallel) -> Any:
    """bitsandbytes NF4 with double quantization, computing in the plan's dtype; refused where it cannot run."""
    if quantization != "4bit":
        raise StageFailed(f"method.lora.quantization={quantization!r}: the runtime knows only 4bit")
    if not par.cuda:
        raise StageFailed(
            "method.lora.quantization=4bit: bitsandbytes' 4-bit (NF4) kernels need a CUDA GPU and this stage runs "
            "on CPU; re-plan without it (method.lora.quantization=null) or for a GPU inventory"
        )
    if par.sharded_at_load and par.tp > 1:
        raise StageFailed(
            f"method.lora.quantization=4bit with tensor parallel {par.tp}: transformers does not split 4-bit "
            "weights by tensor parallel; re-plan (the planner splits a QLoRA base with FSDP)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise StageFailed(
            "method.lora.quantization=4bit needs the bitsandbytes package, which is not installed: "
            "pip install 'ladder-planner[qlora]' (or pip install bitsandbytes)"
        ) from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
        bnb_4bit_quant_storage=dtype,  # FSDP shards 4-bit weights stored in the compute dtype
    )
