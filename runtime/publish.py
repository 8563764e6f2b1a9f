"""publish: put the trained weights where the plan says, under the output model's name.

Refuses unless the gate passed (plan.artifacts.gate exists and says "pass"). A LoRA adapter is
copied in PEFT format (adapter_config.json + adapter_model.safetensors, its base_model_name_or_path
set to the base model's Hub id, or its name when it has none: never this machine's path): it hot-swaps
into a running multi-LoRA server. A full model is copied as safetensors + config + tokenizer, with a
NOTE.md: it needs its own serving deployment. Both get a Hugging Face model card README.md (runtime.hub)
and model_card.json: the output model name, plan id, base model, method, data and a metrics summary.
publish.merge (LoRA) adds merged/: the base with the adapter folded in, as safetensors. Written into a
temporary folder, made readable by everyone (files 0644, folders 0755: a server or another user reads
them) and renamed into place, so a reader never sees half a model; then publish.push_to_hub uploads it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from runtime import hub, tracking
from runtime.context import RunContext, StageFailed
from runtime.status import read_jsonl, write_json_atomic

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
MODEL_PATTERNS = (
    "*.safetensors",
    "model.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
)


def run(ctx: RunContext) -> dict:
    plan = ctx.plan
    verdict = _gate(ctx)
    lora = plan.artifacts.adapter_dir is not None
    source = ctx.path(ctx.stage.inputs.get("weights") or plan.artifacts.adapter_dir or plan.artifacts.model_dir or "")
    dest = ctx.path(plan.artifacts.published_dir or ctx.stage.outputs.get("model") or "run/publish/model")
    if lora:
        missing = [f for f in ADAPTER_FILES if not (source / f).is_file()]
        if missing:
            raise StageFailed(f"no PEFT adapter at {source} (missing {', '.join(missing)}): run the train stage")
        files = [source / f for f in ADAPTER_FILES]
    else:
        if not any(source.glob("*.safetensors")):
            raise StageFailed(f"no safetensors weights at {source}: run the train stage")
        files = sorted({p for pattern in MODEL_PATTERNS for p in source.glob(pattern) if p.is_file()})

    tmp = dest.with_name(f".{dest.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, tmp / f.name)
    if lora:
        _portable_adapter_config(tmp / "adapter_config.json", hub.base_model(plan)[0])
    merged = None
    if lora and plan.spec.publish.merge:
        merged = "merged"
        _merge(ctx, source, tmp / merged)
        ctx.log(f"merged the adapter into {plan.spec.model.name}: {merged}/ (safetensors)")
    card = model_card(ctx, verdict, lora, [f.name for f in files])
    card["merged"] = merged
    write_json_atomic(tmp / "model_card.json", card)
    (tmp / "README.md").write_text(hub.readme(plan, card, verdict, lora=lora), encoding="utf-8")
    if not lora:
        (tmp / "NOTE.md").write_text(_note(plan), encoding="utf-8")
    readable(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    where = dest.relative_to(ctx.bundle)
    ctx.log(
        f"published {plan.artifacts.output_model} ({'LoRA adapter, PEFT format' if lora else 'full model'}) to {where}"
    )
    if not lora:
        ctx.log("full model: it needs its own serving deployment (see NOTE.md)")
    ctx.status.update(published=str(where), output_model=plan.artifacts.output_model)
    shipped = [p for p in dest.rglob("*") if p.is_file()]
    tracking.log(
        ctx,
        {
            "publish/files": len(shipped),
            "publish/bytes": sum(p.stat().st_size for p in shipped),
            "publish/merged": merged is not None,
        },
    )
    repo = plan.spec.publish.push_to_hub
    if repo is not None:
        url = hub.push(dest, repo, private=plan.spec.publish.private, message=f"{plan.artifacts.output_model}")
        ctx.log(f"pushed to the Hub: {repo} ({url})")
        ctx.status.update(pushed=repo)
    return card


def readable(folder: Path) -> None:
    """Files 0644 and folders 0755 under `folder` (itself included): a temporary file or a umask of 077 leaves
    them 0600, which a server running as another user cannot read."""
    os.chmod(folder, 0o755)
    for path in sorted(folder.rglob("*")):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def _portable_adapter_config(path: Path, base: str) -> None:
    """base_model_name_or_path: the Hub id (or the model's name), not the directory the base was loaded from here."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _merge(ctx: RunContext, adapter: Path, out: Path) -> None:
    """The base (the trained SFT base of a chain, when there is one) with the adapter folded in, as safetensors with
    its config and tokenizer."""
    from runtime.models import load_model, load_tokenizer

    plan = ctx.plan
    base = str(ctx.path(plan.artifacts.sft_base_dir)) if plan.artifacts.sft_base_dir else None
    model = load_model(plan, base=base, adapter=str(adapter)).merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    load_tokenizer(plan, base).save_pretrained(out)


def _gate(ctx: RunContext) -> dict:
    path = ctx.path(ctx.plan.artifacts.gate)
    if not path.is_file():
        raise StageFailed(
            f"no gate verdict at {ctx.plan.artifacts.gate}: run the gate stage first; publish only "
            "ships a model that passed it"
        )
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StageFailed(f"{path} is not valid JSON ({exc}): rerun the gate stage") from None
    if not isinstance(verdict, dict) or verdict.get("verdict") != "pass":
        reasons = verdict.get("reasons") if isinstance(verdict, dict) else None
        raise StageFailed(
            "the gate did not pass" + (f": {'; '.join(map(str, reasons))}" if reasons else "") + "; not publishing"
        )
    return verdict


def model_card(ctx: RunContext, verdict: dict, lora: bool, files: list[str]) -> dict:
    plan = ctx.plan
    status = _read_json(ctx.path(plan.artifacts.status))
    records = read_jsonl(ctx.path(plan.artifacts.metrics))
    epochs = [r for r in records if r.get("kind") == "epoch" and r.get("val_loss") is not None]
    best = min(epochs, key=lambda r: r["val_loss"]) if epochs else None
    method = plan.stage("train").method  # exactly what the train stage used
    card = {
        "name": plan.artifacts.output_model,
        "plan_id": plan.id,
        "base_model": {
            "name": plan.spec.model.name,
            "hf_id": plan.spec.model.hf_id,
            "config": plan.decision.config_urn,
        },
        "method": plan.decision.method,
        "pipeline": list(plan.decision.pipeline),
        "format": "peft-lora" if lora else "safetensors",
        "files": files,
        "serving": {"kind": plan.decision.serving.kind, "reason": plan.decision.serving.reason},
        "data": {
            "name": plan.spec.data.name,
            "path": plan.spec.data.path,
            "format": plan.spec.data.format,
            "training_records": plan.data_stats.training.records,
            "validation_records": plan.data_stats.validation.records if plan.data_stats.validation else None,
        },
        "hyperparameters": method.model_dump(mode="json") if method is not None else None,
        "metrics": {
            "steps": status.get("steps_completed"),
            "epochs": status.get("epochs_completed"),
            "train_loss": status.get("train_loss"),
            "val_loss": status.get("val_loss"),
            "best_val_loss": best["val_loss"] if best else None,
            "best_epoch": status.get("best_epoch"),
            "train_seconds": status.get("elapsed_seconds"),
        },
        "gate": {
            "verdict": verdict.get("verdict"),
            "metric": verdict.get("metric"),
            "baseline": (verdict.get("baseline") or {}).get("task_score"),
            "tuned": (verdict.get("tuned") or {}).get("task_score"),
            "improvement": verdict.get("improvement"),
            "general": verdict.get("general"),
        },
    }
    return card


def _note(plan) -> str:
    return (
        f"# {plan.artifacts.output_model}\n\n"
        f"A full fine-tune of {plan.spec.model.name} ({plan.decision.method}, plan {plan.id}): every weight "
        "changed, so it cannot hot-swap into the server that runs the base model the way a LoRA adapter "
        "does. It needs its own serving deployment (its own GPUs and endpoint), like any other model.\n\n"
        "Files: safetensors weights, config.json and the tokenizer; load with "
        "`AutoModelForCausalLM.from_pretrained(<this folder>)`. model_card.json has the plan, data and "
        "metrics.\n"
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
