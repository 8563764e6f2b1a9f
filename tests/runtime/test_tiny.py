"""tiny-llama: the model this project builds itself (runtime/tiny.py).

One build per module into a temporary cache ($LADDER_CACHE), then: it loads with
AutoModelForCausalLM / AutoTokenizer like any hub model, matches conf/model/tiny-llama.yaml,
the cache hit does not train, two processes racing to build the same directory build once
(the file lock) and produce the same bytes as the first build (determinism), generation runs,
and the forgetting benchmark scores clearly above chance (0.25).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from runtime import tiny  # noqa: E402

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ladder-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LADDER_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def built(cache: Path) -> Path:
    return tiny.build(progress=False)


@pytest.fixture(scope="module")
def model(built: Path):
    m = AutoModelForCausalLM.from_pretrained(built)
    m.eval()
    return m


@pytest.fixture(scope="module")
def tokenizer(built: Path):
    return AutoTokenizer.from_pretrained(built)


def test_built_into_the_cache(built: Path, cache: Path) -> None:
    assert built == tiny.path()
    assert built.parent == cache
    assert built.name == f"tiny-llama-{tiny.fingerprint()[:16]}"
    names = {p.name for p in built.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "build_info.json"} <= names
    info = json.loads((built / "build_info.json").read_text())
    assert info["hash"] == tiny.fingerprint()
    assert info["params"] == 354_624
    assert info["recipe"] == tiny.RECIPE and info["recipe_version"] == tiny.RECIPE_VERSION
    # the atomic build leaves no temporary directories behind
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [built.name]


def test_cache_hit_does_not_train(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = (built / "build_info.json").stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("cache hit must not train")

    monkeypatch.setattr(tiny, "_build_into", no_training)
    t0 = time.perf_counter()
    assert tiny.build(progress=False) == built
    assert time.perf_counter() - t0 < 5.0
    assert (built / "build_info.json").stat().st_mtime_ns == stamp


def test_hash_covers_the_recipe(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny, "RECIPE_VERSION", tiny.RECIPE_VERSION + 1)
    assert tiny.path() != built
    monkeypatch.undo()
    monkeypatch.setitem(tiny.RECIPE, "steps", tiny.RECIPE["steps"] + 1)
    assert tiny.path() != built


def test_config_matches_the_catalog(model) -> None:
    arch = tiny.architecture()
    c = model.config
    assert c.model_type == "llama"
    assert (c.vocab_size, c.hidden_size, c.intermediate_size) == (4096, 64, 176)
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (2, 4, 2, 16)
    assert c.max_position_embeddings == 512 and c.tie_word_embeddings is True
    assert c.attention_bias is False
    assert (c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers,
            c.num_attention_heads, c.num_key_value_heads, c.head_dim,
            c.max_position_embeddings, c.tie_word_embeddings) == (
        arch["vocab_size"], arch["hidden_size"], arch["intermediate_size"], arch["num_layers"],
        arch["num_heads"], arch["num_kv_heads"], arch["head_dim"],
        arch["max_position_embeddings"], arch["tied_embeddings"])


def test_parameter_count(model, built: Path) -> None:
    total = tiny.architecture()["total_params"]
    assert total == 354_624
    assert model.num_parameters() == total
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    saved = load_file(built / "model.safetensors")
    assert sum(t.numel() for t in saved.values()) == total  # the tied lm_head is not stored
    assert all(t.dtype == torch.float32 for t in saved.values())


def test_tokenizer(tokenizer) -> None:
    assert len(tokenizer) == 4096
    assert (tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token) == ("<pad>", "<s>", "</s>")
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    ids = tokenizer("What is the opposite of high? Answer: low.")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "What is the opposite of high? Answer: low."
    # byte-level: anything round-trips, no unknown token
    odd = "Grüße, naïve café ✓ 🙂\ttab\nline"
    assert tokenizer.decode(tokenizer(odd)["input_ids"], skip_special_tokens=True) == odd


def test_generation_runs(model, tokenizer) -> None:
    batch = tokenizer(["What is the opposite of high? Answer:"], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    assert out.shape[0] == 1 and batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 8
    assert isinstance(tokenizer.decode(out[0, batch["input_ids"].shape[1]:]), str)


def test_benchmark_above_chance(built: Path) -> None:
    accuracy = tiny.benchmark_accuracy(built)
    assert accuracy > 0.35, f"benchmark accuracy {accuracy:.2f} (chance 0.25)"


def test_concurrent_builds_build_once_and_deterministically(built: Path, tmp_path: Path) -> None:
    """Two processes race to build the same directory: the lock lets one build while the
    other waits and then finds it built. The result is byte-identical to the first build."""
    out = tmp_path / "again"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "runtime.tiny", "--out", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [o.strip().splitlines()[-1] for o in outputs] == [str(out)] * 2
    assert sum("built in" in o for o in outputs) == 1, outputs
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (out / name).read_bytes() == (built / name).read_bytes(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".again.tmp-")]
