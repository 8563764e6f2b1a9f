"""model=local against real models: tiny Llama, Mistral, Qwen2 and Gemma 2 built by transformers from their config
classes and saved with save_pretrained, then planned from the config.json transformers wrote. The planner's count
(planner.hf_config, no torch) must equal torch's; the project's tiny-llama, planned from its folder, loads in the
runtime from the path the plan carries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("transformers")

import transformers

from runtime import models
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 176,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}


@pytest.mark.parametrize(
    ("config_class", "extra"),
    [
        ("LlamaConfig", {"tie_word_embeddings": True}),
        ("LlamaConfig", {"tie_word_embeddings": False, "head_dim": 32}),
        ("MistralConfig", {}),
        ("Qwen2Config", {"tie_word_embeddings": True}),
        ("Gemma2Config", {"head_dim": 16}),
    ],
)
def test_count_equals_torch(config_class, extra, tmp_path):
    config = getattr(transformers, config_class)(**SMALL, **extra)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(tmp_path)
    plan = make_plan("+goal=tone", "model=local", f"model.path={tmp_path}", "inventory=local", "method=lora")
    assert plan.spec.model.architecture.total_params == model.num_parameters()
    assert plan.spec.model.family == config.model_type


def test_tiny_llama_from_its_folder_loads_in_the_runtime(tiny_dir):
    plan = make_plan("+goal=tone", "model=local", f"model.path={tiny_dir}", "inventory=local", "method=lora")
    catalog = yaml.safe_load((ROOT / "conf/model/tiny-llama.yaml").read_text())
    assert plan.spec.model.architecture.model_dump() == catalog["architecture"]
    assert plan.spec.model.chat_template is False  # the tokenizer this project trains has none
    assert plan.feasible, [f.message for f in plan.findings if f.severity == "error"]
    assert plan.spec.model.hf_id == str(Path(tiny_dir).resolve())
    assert models.model_dir(plan) == plan.spec.model.hf_id
    model = models.load_model(plan)
    assert model.num_parameters() == plan.spec.model.architecture.total_params
    assert models.load_tokenizer(plan).vocab_size == plan.spec.model.architecture.vocab_size
