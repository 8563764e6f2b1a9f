# Source: parameter-count formula and LoRA counts from /work/shared/REFERENCE.md
# ("Model architectures"); architectures from conf/model/*.yaml (each model's config.json).
"""The catalog's total_params must follow from its architecture (pure Python, no torch)."""

from pathlib import Path

import pytest
import yaml

MODEL_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"
# local.yaml reads a model's own config.json (tests/unit/test_local_model.py); the rest carry their architecture.
MODEL_FILES = sorted(p for p in MODEL_DIR.glob("*.yaml") if p.stem != "local")


def _load(name: str) -> dict:
    return yaml.safe_load((MODEL_DIR / f"{name}.yaml").read_text())["architecture"]


def total_params(a: dict) -> int:
    h, q_out, kv_out = a["hidden_size"], a["num_heads"] * a["head_dim"], a["num_kv_heads"] * a["head_dim"]
    per_layer = h * q_out + 2 * h * kv_out + q_out * h  # q, k, v, o
    per_layer += (q_out + 2 * kv_out) if a["qkv_bias"] else 0
    per_layer += 3 * h * a["intermediate_size"] + a["norms_per_layer"] * h  # gated MLP, norms
    embed = a["vocab_size"] * h
    return a["num_layers"] * per_layer + embed + (0 if a["tied_embeddings"] else embed) + h


def lora_params(a: dict, r: int, modules: tuple[str, ...]) -> int:
    h, i = a["hidden_size"], a["intermediate_size"]
    q_out, kv_out = a["num_heads"] * a["head_dim"], a["num_kv_heads"] * a["head_dim"]
    shapes = {"q": (h, q_out), "k": (h, kv_out), "v": (h, kv_out), "o": (q_out, h),
              "gate": (h, i), "up": (h, i), "down": (i, h)}
    return a["num_layers"] * sum(r * sum(shapes[m]) for m in modules)


ALL_LINEAR = ("q", "k", "v", "o", "gate", "up", "down")


def test_catalog_floor():
    assert len(MODEL_FILES) >= 14


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_total_params_follow_from_architecture(path):
    doc = yaml.safe_load(path.read_text())
    assert doc["name"] == path.stem
    assert total_params(doc["architecture"]) == doc["architecture"]["total_params"]


@pytest.mark.parametrize(
    ("model", "modules", "expected"),
    [
        ("llama-3.1-8b-instruct", ALL_LINEAR, 41_943_040),
        ("llama-3.1-8b-instruct", ("q", "v"), 6_815_744),
        ("llama-3.2-1b-instruct", ALL_LINEAR, 11_272_192),
    ],
)
def test_lora_trainable_counts(model, modules, expected):
    assert lora_params(_load(model), r=16, modules=modules) == expected


def test_published_totals():
    # Spot-check that the YAML carries REFERENCE.md's published totals, not just self-consistent ones.
    assert _load("llama-3.1-8b-instruct")["total_params"] == 8_030_261_248
    assert _load("qwen2.5-72b-instruct")["total_params"] == 72_706_203_648
    assert _load("gemma-2-9b-it")["total_params"] == 9_241_705_984
