"""What makes the published folder one the Hugging Face Hub and a server accept: the model card README.md (YAML
front matter: base_model, library_name, tags, the gate's metrics as model-index), the base model's id as it should
appear outside this machine, and the upload (publish.push_to_hub). Used by runtime.publish; no torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from runtime.context import StageFailed
from schemas.plan import Plan

TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def base_model(plan: Plan) -> tuple[str, str | None]:
    """(the base model's id, why it is not a Hub id or None): the Hub id when the model has one; the model's name
    for the tiny model this project builds and for a model loaded from a local directory (never the path: it
    means nothing on another machine)."""
    model = plan.spec.model
    if model.builder == "tiny":
        return model.name, f"built by this project (runtime.tiny, model.builder={model.builder}), not on the Hub"
    hf_id = model.hf_id
    if os.path.isabs(hf_id) or hf_id.startswith((".", "~")) or hf_id.count("/") > 1:
        return model.name, "a model from a local directory, not on the Hub"
    return hf_id, None


def readme(plan: Plan, card: dict, verdict: dict, *, lora: bool) -> str:
    """README.md: YAML front matter the Hub reads, then what the model is, how it was judged and how to load it."""
    base, local = base_model(plan)
    metric = verdict.get("metric") or plan.spec.goal.metric
    general = verdict.get("general") or {}
    results = []
    for label, value in (
        (f"{metric} (tuned)", (verdict.get("tuned") or {}).get("task_score")),
        (f"{metric} (baseline, same prompt)", (verdict.get("baseline") or {}).get("task_score")),
    ):
        if isinstance(value, (int, float)):
            results.append({"name": label, "type": metric, "value": round(float(value), 4)})
    bench = general.get("benchmark")
    if isinstance(general.get("tuned"), (int, float)):
        results.append({"name": f"general accuracy ({bench})", "type": "accuracy", "value": general["tuned"]})
    meta: dict[str, Any] = {
        "library_name": "peft" if lora else "transformers",
        "pipeline_tag": "text-generation",
        "tags": sorted({plan.decision.method, "lora" if lora else "full-fine-tune", plan.spec.goal.name})
        + (["peft"] if lora else []),
    }
    if datasets := hub_datasets(plan):
        meta["datasets"] = datasets
    if results:
        meta["model-index"] = [
            {
                "name": plan.artifacts.output_model,
                "results": [
                    {
                        "task": {"type": "text-generation", "name": plan.spec.goal.name},
                        "dataset": {"name": plan.spec.data.name, "type": plan.spec.data.name},
                        "metrics": results,
                    }
                ],
            }
        ]
    front = f"base_model: {_scalar(base)}" + (f"  # {local}" if local else "") + "\n"
    front += yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n" + _body(plan, card, verdict, base, local, lora=lora)


def hub_datasets(plan: Plan) -> list[str]:
    """The Hub datasets (org/name) the model was trained on: the data's, or those of its mixture."""
    stats = [plan.data_stats, *(p.stats for p in plan.data_stats.mixture)]
    return sorted({s.hub.repo for s in stats if s.hub is not None})


def _data_source(plan: Plan) -> str:
    hub = hub_datasets(plan)
    if plan.data_stats.mixture:
        parts = ", ".join(f"{p.path} ({p.share:.0%}, {p.drawn} records)" for p in plan.data_stats.mixture)
        return f"a mixture: {parts}"
    return f"the Hub dataset {hub[0]}" if hub else "local files, not a Hub dataset"


def _scalar(value: str) -> str:
    return yaml.safe_dump(value, default_style=None).removesuffix("\n...\n").strip()


def _body(plan: Plan, card: dict, verdict: dict, base: str, local: str | None, *, lora: bool) -> str:
    name = plan.artifacts.output_model
    what = (
        f"A LoRA adapter (PEFT format) for `{base}`"
        if lora
        else f"A full fine-tune of `{base}` (every weight changed: it needs its own serving deployment)"
    )
    lines = [
        f"# {name}",
        "",
        f"{what}, trained with {plan.decision.method} by plan `{plan.id}` for the goal *{plan.spec.goal.name}*: "
        f"{plan.spec.goal.description}",
        "",
    ]
    if local:
        lines += [f"The base model `{base}` is {local}.", ""]
    if plan.artifacts.sft_base_dir:
        first = plan.artifacts.sft_base_dir
        lines += [f"The adapter applies on top of the SFT model this plan trained first ({first}).", ""]
    lines += ["## Gate", "", f"Verdict: **{verdict.get('verdict')}**.", "", "| check | result |", "|---|---|"]
    lines += [f"| {c['name']} | {_cell(c['message'])} |" for c in verdict.get("checks") or []]
    forgetting = verdict.get("forgetting") or {}
    if forgetting.get("interval_95"):
        lo, hi = forgetting["interval_95"]
        lines += [
            "",
            f"Forgetting: the general score dropped {forgetting['drop_points']:.1f} points, 95% interval "
            f"{lo:+.1f} to {hi:+.1f} ({forgetting['method']}, {forgetting['n_items']} items); the gate fails only "
            f"when the whole interval is above {forgetting['threshold_points']:g} points.",
        ]
    data = card.get("data") or {}
    lines += [
        "",
        "## Training",
        "",
        f"- data: `{data.get('name')}` ({data.get('format')}), {data.get('training_records')} training records, "
        f"{data.get('validation_records')} validation records ({_data_source(plan)})",
        f"- method: {plan.decision.method}" + (f", rank {rank}" if (rank := _rank(card)) else ""),
        f"- plan: `{plan.id}`; model_card.json holds every hyperparameter and the training metrics",
        "",
        "## Use",
        "",
    ]
    if lora:
        lines += [
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{base}")',
            'model = PeftModel.from_pretrained(base, "<this folder or repo>")',
            "```",
            "",
            f"vLLM: `vllm serve {base} --enable-lora --max-lora-rank {plan.spec.goal.serving.max_lora_rank} "
            f'--lora-modules {plan.spec.goal.name}="<this folder>"`.',
        ]
        if card.get("merged"):
            lines += ["", f"`{card['merged']}/` holds the merged model (base + adapter) as safetensors."]
    else:
        lines += ['`AutoModelForCausalLM.from_pretrained("<this folder>")`; see NOTE.md.']
    return "\n".join(lines) + "\n"


def _rank(card: dict) -> int | None:
    lora = (card.get("hyperparameters") or {}).get("lora")
    return lora.get("adapter_dim") if isinstance(lora, dict) and card.get("format") == "peft-lora" else None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def push(folder: Path, repo: str, *, private: bool, message: str) -> str:
    """Upload `folder` to the Hub model repo `repo` (created when missing); the URL of the commit."""
    token = next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)
    if token is None:
        raise StageFailed(
            f"publish.push_to_hub={repo}: no Hugging Face token in the environment: export HF_TOKEN=<a token with "
            f"write access to {repo}> and rerun the publish stage; the local copy is at {folder}"
        )
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise StageFailed(
            f"publish.push_to_hub={repo}: HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it for the "
            f"publish stage and rerun it; the local copy is at {folder}"
        )
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", commit_message=message)
    except Exception as exc:  # HTTP, auth, network: say which repo and why, keep the local copy
        raise StageFailed(
            f"publish.push_to_hub={repo}: the upload failed ({type(exc).__name__}: {exc}); check the token's "
            f"write access and rerun the publish stage; the local copy is at {folder}"
        ) from None
    return str(getattr(info, "commit_url", info))
