"""Load the plan's model and tokenizer the way real models load: from_pretrained(a directory).

tiny-llama is built by the project (runtime.tiny) and cached; catalog models load from a local
directory when model.hf_id names one, else by hub id (honouring HF_HUB_OFFLINE; tests never do).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from runtime.context import StageFailed
from schemas.plan import Plan, PromptFormat


def model_dir(plan: Plan, base: str | None = None) -> str:
    """Where the base weights come from: a trained SFT base, the tiny model, a local dir or a hub id."""
    if base is not None:
        return base
    model = plan.spec.model
    if model.builder == "tiny":
        from runtime import tiny

        return str(tiny.build(progress=True))
    local = Path(model.hf_id).expanduser()
    return str(local) if local.is_dir() else model.hf_id


def load_tokenizer(plan: Plan, base: str | None = None):
    from transformers import AutoTokenizer

    source = model_dir(plan, base)
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise StageFailed(
            f"cannot load the tokenizer of {plan.spec.model.name} from {source!r}: {exc}. "
            "Set model.hf_id to a local directory, or allow hub downloads on this machine"
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def torch_dtype(plan: Plan):
    import torch

    precision = plan.layout.precision
    if precision.startswith("bf16") and torch.cuda.is_available():
        return torch.bfloat16
    if precision.startswith("fp16") and torch.cuda.is_available():
        return torch.float16
    return torch.float32


def attention_implementation(name: str) -> str:
    """The plan's attention kernel for from_pretrained(attn_implementation=...), refused here with the fix where it
    cannot run (flash_attention_2 without a CUDA GPU or without the flash_attn package), not deep in transformers."""
    if name != "flash_attention_2":
        return name
    import importlib.util

    import torch

    fix = "re-plan with layout.attention_implementation=sdpa"
    if not torch.cuda.is_available():
        raise StageFailed(
            f"the plan's layout says attention_implementation=flash_attention_2, which runs on CUDA GPUs only, and "
            f"this stage has none; {fix}"
        )
    if importlib.util.find_spec("flash_attn") is None:
        raise StageFailed(
            "the plan's layout says attention_implementation=flash_attention_2, and the flash_attn package is not "
            f"installed here: pip install flash-attn --no-build-isolation (built for this torch and CUDA), or {fix}"
        )
    return name


def load_model(plan: Plan, base: str | None = None, adapter: str | None = None) -> Any:
    """The causal LM (optionally with a PEFT adapter applied) in eval mode, with the plan's attention kernel."""
    from transformers import AutoModelForCausalLM

    source = model_dir(plan, base)
    attention = attention_implementation(plan.layout.attention_implementation)
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype(plan), attn_implementation=attention
        )
    except OSError as exc:
        raise StageFailed(f"cannot load {plan.spec.model.name} from {source!r}: {exc}") from None
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model


def prompt_format(plan: Plan, stage: str | None = None) -> PromptFormat:
    """The stage's prompt format (every stage that formats records carries the same one)."""
    for s in plan.stages:
        if (stage is None or s.name == stage) and s.prompt is not None:
            return s.prompt
    raise StageFailed(f"plan {plan.id} records no prompt format{f' for stage {stage!r}' if stage else ''}: re-plan it")


def check_chat(fmt: PromptFormat, tok, model: str) -> None:
    if fmt.kind == "chat_template" and not getattr(tok, "chat_template", None):
        raise StageFailed(
            f"the plan formats records with {model}'s chat template, but its tokenizer has none: set "
            "model.chat_template=false in the model's config and re-plan"
        )


def chat_turns(prompt: str | list[dict]) -> list[dict]:
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]


def render_prompt(fmt: PromptFormat, prompt: str | list[dict], tok=None) -> str:
    """The text the model sees at inference, up to the completion.

    Plain: the config's template up to {completion}; trailing spaces are left to the completion, as in training
    (runtime.train): a byte-level BPE merges " word" into one token, so a prompt ending in a lone space token is
    one the model never saw. Chat: the tokenizer's chat template with the generation prompt.
    """
    if fmt.kind == "chat_template":
        return tok.apply_chat_template(chat_turns(prompt), tokenize=False, add_generation_prompt=True)
    assert isinstance(prompt, str)
    return fmt.template.split("{completion}")[0].replace("{prompt}", prompt).rstrip(" ")


def render_example(fmt: PromptFormat, prompt: str, completion: str, tok=None) -> tuple[str, str]:
    """(prompt part, completion part) of a record, so the loss covers the completion only."""
    if fmt.kind == "chat_template":
        head = render_prompt(fmt, prompt, tok)
        full = tok.apply_chat_template(
            [*chat_turns(prompt), {"role": "assistant", "content": completion}], tokenize=False
        )
        return head, full[len(head) :] if full.startswith(head) else completion
    head, _, tail = fmt.template.partition("{completion}")
    return head.replace("{prompt}", prompt), completion + tail.replace("{prompt}", prompt)


def special_tokens(fmt: PromptFormat) -> bool:
    """Whether encoding rendered text adds the tokenizer's special tokens (a chat template writes its own)."""
    return fmt.kind != "chat_template"


# On CPU below this size one intra-op thread is fastest: the matmuls are too small to split, and on a busy
# machine a second thread makes every op wait for a descheduled thread (tiny-llama, 2 cores under load:
# 73 ms/step with one thread, 800 ms with two; evaluation 0.3 s against 1-20 s).
SMALL_MODEL_PARAMS = 50_000_000


@contextlib.contextmanager
def threads_for(model):
    """One intra-op thread while a small model runs on CPU; the previous count restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    on_cpu = next(model.parameters()).device.type == "cpu"
    small = on_cpu and model.num_parameters() < SMALL_MODEL_PARAMS
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(previous)
