# Sources: /work/shared/REFERENCE.md ("Model architectures": the totals and the formula) and the config.json keys
# of transformers' LlamaConfig, MistralConfig, Qwen2Config and Gemma2Config.
"""model=local model.path=<dir or hub id>: the architecture read from config.json, the exact parameter count,
the refusals, the derived training options, and the CLI end to end. Every config.json is written here, in
tmp_path; nothing is downloaded. No torch (tests/runtime/test_local_model.py builds real tiny models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from pytest import param

from planner import derive, hf_config
from planner.errors import ConfigError
from schemas.model import Model
from tests.unit.helpers import make_plan, run_cli, run_json

ROOT = Path(__file__).resolve().parents[2]
CATALOG = sorted(p for p in (ROOT / "conf" / "model").glob("*.yaml") if p.stem != "local")

# The acceptance check's config.json (meta-llama/Llama-3.2-1B-Instruct's keys and values).
LLAMA_1B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": True,
    "rms_norm_eps": 1e-05,
    "torch_dtype": "bfloat16",
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "rope_theta": 500000.0,
}
# family -> (model_type, architectures) as the real config.json files write them
MODEL_TYPE = {
    "llama": ("llama", "LlamaForCausalLM"),
    "mistral": ("mistral", "MistralForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "gemma2": ("gemma2", "Gemma2ForCausalLM"),
}


def write_model(folder: Path, config: dict, tokenizer: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if tokenizer is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    return folder


def config_json(doc: dict) -> dict:
    """A catalog entry's architecture written back as its model's config.json (the keys transformers saves)."""
    a = doc["architecture"]
    model_type, cls = MODEL_TYPE[doc["family"]]
    return {
        "architectures": [cls],
        "model_type": model_type,
        "vocab_size": a["vocab_size"],
        "hidden_size": a["hidden_size"],
        "intermediate_size": a["intermediate_size"],
        "num_hidden_layers": a["num_layers"],
        "num_attention_heads": a["num_heads"],
        "num_key_value_heads": a["num_kv_heads"],
        "head_dim": a["head_dim"],
        "max_position_embeddings": a["max_position_embeddings"],
        "tie_word_embeddings": a["tied_embeddings"],
        "rms_norm_eps": 1e-06,
        "torch_dtype": "bfloat16",
        "hidden_act": "silu",
    }


def test_llama_3_2_1b_counts_exactly(tmp_path):
    folder = write_model(tmp_path / "Llama-3.2-1B-Instruct", LLAMA_1B)
    arch, family = hf_config.architecture(LLAMA_1B, folder / "config.json")
    assert arch["total_params"] == 1_235_814_400
    assert family == "llama"
    shipped = yaml.safe_load((ROOT / "conf/model/llama-3.2-1b-instruct.yaml").read_text())["architecture"]
    assert arch == shipped


def test_catalog_floor():
    assert len(CATALOG) >= 14
    assert {yaml.safe_load(p.read_text())["family"] for p in CATALOG} == set(MODEL_TYPE)


@pytest.mark.parametrize("path", CATALOG, ids=lambda p: p.stem)
def test_catalog_models_from_their_config_json(path, tmp_path):
    """Each shipped model, written as its config.json, reads back to the shipped architecture block: the same
    total_params (the real models' counts), qkv bias for Qwen2, four norms for Gemma 2, tied embeddings."""
    doc = yaml.safe_load(path.read_text())
    config = config_json(doc)
    arch, family = hf_config.architecture(config, write_model(tmp_path, config) / "config.json")
    assert family == doc["family"]
    # the checkpoint's bytes per parameter come from the weight files beside config.json, not from config.json
    assert arch == {k: v for k, v in doc["architecture"].items() if k != "checkpoint_bytes_per_param"}


def test_model_types_are_the_schema_families():
    families = set(typing.get_args(Model.model_fields["family"].annotation))
    assert {t.family for t in hf_config.MODEL_TYPES.values()} == families


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # transformers' defaults: all heads as kv heads, hidden / heads per head, untied (LlamaConfig)
        param({"model_type": "llama"}, {"num_kv_heads": 32, "head_dim": 64, "tied_embeddings": False}, id="llama"),
        param(
            {"model_type": "llama", "num_key_value_heads": None, "head_dim": None},
            {"num_kv_heads": 32, "head_dim": 64},
            id="llama-nulls",
        ),
        # Gemma2Config: head_dim 256, 4 kv heads, tied; four norms a layer
        param(
            {"model_type": "gemma2", "num_key_value_heads": 8},
            {"head_dim": 256, "tied_embeddings": True, "norms_per_layer": 4},
            id="gemma2",
        ),
        param(
            {"model_type": "qwen2", "num_key_value_heads": 4}, {"qkv_bias": True, "tied_embeddings": False}, id="qwen2"
        ),
    ],
)
def test_keys_config_json_may_leave_out(config, expected, tmp_path):
    base = {
        "vocab_size": 1000,
        "hidden_size": 2048,
        "intermediate_size": 4096,
        "num_hidden_layers": 2,
        "num_attention_heads": 32,
        "max_position_embeddings": 4096,
    }
    arch, _ = hf_config.architecture({**base, **config}, tmp_path / "config.json")
    assert {k: arch[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("change", "key", "says"),
    [
        param(
            {"model_type": "mixtral", "num_local_experts": 8}, "model_type", "model_type 'mixtral'", id="unknown-type"
        ),
        param({"model_type": None}, "model_type", "no model_type", id="no-type"),
        param({"num_local_experts": 8}, "num_local_experts", "mixture of experts", id="moe-local-experts"),
        param({"model_type": "qwen2", "num_experts": 60}, "num_experts", "mixture of experts", id="moe-experts"),
        param({"intermediate_size": None}, "intermediate_size", "intermediate_size is None", id="null-key"),
        param({"hidden_size": "2048"}, "hidden_size", "not a positive integer", id="string-value"),
        param({"attention_bias": True}, "attention_bias", "does not model", id="o-proj-bias"),
        param({"mlp_bias": True}, "mlp_bias", "does not model", id="mlp-bias"),
        param({"num_key_value_heads": 5}, "num_key_value_heads", "not a multiple", id="kv-heads-divide"),
    ],
)
def test_refused_architectures(change, key, says, tmp_path):
    config = {k: v for k, v in {**LLAMA_1B, **change}.items() if v is not None or k != "model_type"}
    file = write_model(tmp_path, config) / "config.json"
    with pytest.raises(ConfigError) as info:
        hf_config.architecture(config, file)
    err = info.value
    assert str(file) in err.message and says in err.message
    assert err.path == f"model.path (config.json: {key})"
    assert "llama, mistral, qwen2, gemma2" in err.fix


def test_a_missing_key_is_named(tmp_path):
    config = {k: v for k, v in LLAMA_1B.items() if k != "num_hidden_layers"}
    with pytest.raises(ConfigError, match="the key num_hidden_layers is missing"):
        hf_config.architecture(config, write_model(tmp_path, config) / "config.json")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        param(
            {"tokenizer_config.json": {"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}},
            True,
            id="in-tokenizer-config",
        ),
        param({"tokenizer_config.json": {"model_max_length": 4096}}, False, id="none-in-tokenizer-config"),
        param({"chat_template.jinja": "{{ messages }}"}, True, id="chat-template-file"),
        param({}, False, id="no-tokenizer"),
    ],
)
def test_chat_template_from_the_tokenizer_files(files, expected, tmp_path):
    for name, content in files.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    assert hf_config.has_chat_template(tmp_path) is expected


# ---------------------------------------------------------------- through the CLI


def test_cli_plans_a_local_model_with_derived_options(capsys, tmp_path):
    folder = write_model(tmp_path / "m1b", LLAMA_1B, tokenizer={"chat_template": "{{ messages }}"})
    code, plan, err = run_json(
        capsys, "+goal=tone", "model=local", f"model.path={folder}", "inventory=h200-1", "method=lora"
    )
    assert code == 0, err
    assert plan is not None and plan["feasible"]
    model = plan["spec"]["model"]
    assert model["architecture"]["total_params"] == 1_235_814_400
    assert (model["name"], model["namespace"], model["hf_id"]) == ("m1b", "local", str(folder))
    assert model["chat_template"] is True and model["configs"] == []
    assert plan["decision"]["config_urn"] == "local/m1b@v0.0.0+A100"
    assert plan["decision"]["training_option"]["num_gpus"] == 1
    derived = [f for f in plan["findings"] if f["code"] == "config-derived"]
    assert len(derived) == 1 and derived[0]["severity"] == "warning"
    assert "no customization config" in derived[0]["message"] and "sft/lora" in derived[0]["message"]

    code, out, _ = run_cli(
        capsys, "+goal=tone", "model=local", f"model.path={folder}", "inventory=h200-1", "method=lora", "dry_run=true"
    )
    assert code == 0
    assert "model m1b (local/m1b@v0.0.0+A100)" in out
    assert "WARNING config-derived (model.configs): m1b has no customization config" in out


def test_keys_of_the_local_model_are_set_without_plus(capsys, tmp_path):
    folder = write_model(tmp_path / "m1b", LLAMA_1B, tokenizer={"chat_template": "{{ messages }}"})
    code, plan, err = run_json(
        capsys,
        "+goal=tone",
        "model=local",
        f"model.path={folder}",
        "model.name=my-llama",
        "model.namespace=team",
        "model.chat_template=false",
    )
    assert code == 0, err
    assert plan is not None
    model = plan["spec"]["model"]
    assert (model["name"], model["namespace"], model["chat_template"]) == ("my-llama", "team", False)


def test_derived_options_follow_the_memory_fit(tmp_path):
    """Llama 3.1 8B read from its config.json: on L40S (48 GB) LoRA needs two GPUs at sequence 4096, as the
    published L40 config says; all weights fit on no plain layout of 4 L40S there, so that stage is searched
    (at the data's own sequence length) instead, as on a GPU class without a config."""
    doc = yaml.safe_load((ROOT / "conf/model/llama-3.1-8b-instruct.yaml").read_text())
    folder = write_model(tmp_path / "l8", config_json(doc))
    plan = make_plan("+goal=tone", "model=local", f"model.path={folder}", "inventory=l40s-4", "method=sft")
    options = {(o.training_type, o.finetuning_type): o for o in derive.config(plan.spec).training_options}
    published = Model.model_validate(doc).find_config("meta/llama-3.1-8b-instruct@v1.0.0+L40")
    assert published is not None
    assert options[("sft", "lora")] == published.option("sft", "lora")
    assert ("sft", "all_weights") not in options
    assert plan.layout.source == "search" and plan.feasible
    (finding,) = [f for f in plan.findings if f.code == "config-derived"]
    assert "no plain layout fits (searched): sft/all_weights" in finding.message
    assert not [f for f in plan.findings if f.code == "finetuning-type-unsupported"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        param([], "model=local needs the model's location", id="no-path"),
        param(["model.path=/nonexistent/folder"], "is not a directory", id="no-such-folder"),
        param(["model.path={tmp}"], "no config.json in", id="no-config-json"),
        param(["model.path={tmp}/mx"], "model_type 'mixtral': the planner cannot estimate", id="unknown-type"),
        param(["model.path={tmp}/m1b", "model.config=local/m1b@v1.0.0+A100"], "the model lists none", id="config-urn"),
    ],
)
def test_cli_refuses_with_exit_2(args, says, capsys, tmp_path):
    write_model(tmp_path / "m1b", LLAMA_1B)
    write_model(tmp_path / "mx", {**LLAMA_1B, "model_type": "mixtral", "num_local_experts": 8})
    code, out, err = run_cli(
        capsys, "+goal=tone", "model=local", *[a.format(tmp=tmp_path) for a in args], "dry_run=true"
    )
    assert code == 2 and out == ""
    # (a line of its own: a logging handler another in-process test left behind may write before it)
    assert any(line.startswith("error: ") for line in err.splitlines()) and says in err, err


def _subprocess(args: list[str], cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "planner", "+goal=tone", "model=local", *args, "dry_run=true"],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_a_hub_id_missing_from_the_cache_says_how_to_fetch_it(tmp_path):
    proc = _subprocess(["model.path=meta-llama/Llama-3.2-1B-Instruct"], tmp_path / "empty-cache", tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert (
        "'meta-llama/Llama-3.2-1B-Instruct' is neither a directory nor a model in the local Hugging Face cache"
        in proc.stderr
    )
    assert "hf download meta-llama/Llama-3.2-1B-Instruct config.json" in proc.stderr


def test_a_refused_architecture_exits_2_without_a_traceback(tmp_path):
    folder = write_model(tmp_path / "mixtral", {**LLAMA_1B, "model_type": "mixtral", "num_local_experts": 8})
    proc = _subprocess([f"model.path={folder}"], tmp_path / "cache", tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: {folder}/config.json: model_type 'mixtral'"), proc.stderr
    assert "Traceback" not in proc.stderr and "model_type llama, mistral, qwen2, gemma2" in proc.stderr


def test_a_hub_id_in_the_cache_plans(tmp_path):
    """The Hugging Face cache layout (models--owner--name/refs/main -> snapshots/<commit>/config.json), as
    `hf download` leaves it; the plan keeps the hub id for the runtime to load from the same cache."""
    repo = tmp_path / "cache" / "models--meta-llama--Llama-3.2-1B-Instruct"
    write_model(repo / "snapshots" / "0123abcd", LLAMA_1B, tokenizer={"chat_template": "{{ messages }}"})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    proc = _subprocess(
        ["model.path=meta-llama/Llama-3.2-1B-Instruct", "inventory=h200-1", "method=lora", "report=json"],
        tmp_path / "cache",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)["spec"]["model"]
    assert (model["hf_id"], model["name"], model["namespace"]) == (
        "meta-llama/Llama-3.2-1B-Instruct",
        "Llama-3.2-1B-Instruct",
        "meta-llama",
    )
    assert model["architecture"]["total_params"] == 1_235_814_400 and model["chat_template"] is True
