"""A table of bad configurations: each pins the exit code, the finding code or key path, and the message.

Base: `+goal=tone` on the shipped data (feasible). Each case adds a delta.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pytest import param

from planner.compose import compose
from planner.errors import ConfigError
from planner.paths import conf_dir
from tests.unit.helpers import run_json

GOOD = {"prompt": "Where is my order 1042?\n", "completion": "Dear Ann, your order 1042 ships today."}


def _dataset(root: Path, spec: str) -> Path:
    """Small datasets by name: 'tiny' (10 records), 'root' (files in the root), 'missing', 'malformed', 'n30'."""
    d = root / spec
    (d / "training").mkdir(parents=True)
    lines = [json.dumps({**GOOD, "prompt": f"order {i}\n"}) for i in range(400)]
    if spec == "tiny":
        lines = lines[:10]
    elif spec == "n30":
        lines = lines[:30]
    elif spec == "root":
        (d / "train.jsonl").write_text("\n".join(lines) + "\n")
        lines = []
    elif spec == "missing":
        lines[2] = json.dumps({"prompt": "no answer here"})
    elif spec == "malformed":
        lines[4] = '{"prompt": "cut off'
        lines[7] = "[1, 2]"
    (d / "training" / "train.jsonl").write_text("\n".join(lines) + ("\n" if lines else ""))
    return d


CASES = [
    # --- invalid configuration: exit 2, the key path named, no traceback
    param(["method=lora", "method.lora.adapter_dimm=8"], 2, None, "method.lora.adapter_dimm", "Did you mean 'adapter_dim'", id="typo-nested-key"),
    param(["no_such_key=1"], 2, None, "no_such_key", "unknown configuration key", id="unknown-top-key"),
    param(["method=lora", "method.learning_rat=1e-4"], 2, None, "method.learning_rat", "Did you mean 'learning_rate'", id="typo-method-key"),
    param(["method=lora", "+method.lora.rank=8"], 2, None, "method.lora.rank", "unknown key", id="appended-unknown-key"),
    param(["method=lora", "method.epochs=ten"], 2, None, "method.epochs", "valid integer", id="wrong-type-int"),
    param(["goal.gpu_hour_budget=lots"], 2, None, "goal.gpu_hour_budget", "valid number", id="wrong-type-float"),
    param(["goal.target_score=85"], 2, None, "goal.target_score", "set goal.target_score to a number from 0 to 1", id="score-not-fraction"),
    param(["model=llama-9b"], 2, None, "model", "unknown model 'llama-9b'", id="unknown-model-option"),
    param(["model.path=/tmp"], 2, None, "model.path", "write model=local model.path=", id="model-path-without-local"),
    param(["inventory=dgx-h1000"], 2, None, "inventory", "Did you mean 'dgx-h100'", id="unknown-inventory-option"),
    param(["launch=maybe"], 2, None, "launch", "valid boolean", id="bad-run-option"),
    param(["goal.name=../../etc"], 2, None, "goal.name", "not a safe name", id="path-traversal-goal-name"),
    param(["data.name=a/b"], 2, None, "data.name", "not a safe name", id="path-traversal-data-name"),
    param(["data.path=/nonexistent/dataset"], 2, None, "data.path", "does not exist", id="bad-data-path"),
    param(["data.path=s3://bucket/x"], 2, None, "data", "needs declared counts", id="remote-without-counts"),
    param(["method=lora", "method.replay={data: general.txt}"], 2, None, "method.replay", "give the absolute path", id="replay-relative-path"),
    param(["method=dpo", "method.reference=adapters_disabled"], 2, None, "method", "needs finetuning_type 'lora'", id="dpo-reference-mismatch"),
    # --- not feasible: exit 1, an error finding with code and key path
    param(["model.config=meta/llama-3.1-8b-instruct@@v1"], 1, "config-urn-invalid", "model.config", "is not a config URN", id="urn-invalid"),
    param(["model.config=meta/llama-3.1-8b-instruct"], 1, "config-urn-version", "model.config", "@v1.0.0+A100", id="urn-without-version"),
    param(["model.config=meta/llama-3.1-8b-instruct@v9.9.9+A100"], 1, "config-urn-unknown", "model.config", "is not a customization config", id="urn-unknown"),
    param(["model.config=meta/llama-3.1-8b-instruct@v1.0.0+L40"], 1, "config-gpu-class", "model.config", "L40-class", id="urn-wrong-gpu-class"),
    param(["model=llama-3.1-70b-instruct", "method=sft"], 1, "finetuning-type-unsupported", "method.kind", "finetuning_type=all_weights", id="finetuning-type-not-listed"),
    param(["method=lora", "layout.gpus_per_node=8", "layout.tensor_parallel=16"], 1, "layout-tp-exceeds-node", "layout.tensor_parallel", "TP must stay within one node", id="tp-exceeds-node"),
    param(["method=lora", "layout.gpus_per_node=8", "layout.tensor_parallel=1", "layout.pipeline_parallel=3"], 1, "layout-product", "layout", "does not divide", id="tp-pp-not-dividing"),
    param(["method=sft", "inventory=dgx-h100", "layout.pipeline_parallel=2"], 1, "layout-pp-not-executable", "layout.pipeline_parallel", "set layout.pipeline_parallel=1; to split the model use layout.tensor_parallel=2", id="pp-pin-not-executable"),
    param(["method=lora", "layout.sharding=zero1"], 1, "layout-sharding-not-executable", "layout.sharding", "sharding zero1: the runtime does not run it", id="zero1-pin-not-executable"),
    param(["method=sft", "inventory=dgx-h100", "method.sharding=zero1", "layout.gpus_per_node=8", "layout.tensor_parallel=1"], 1, "layout-sharding-not-executable", "method.sharding", "set method.sharding=zero2", id="zero1-method-pin-not-executable"),
    param(["method=sft", "inventory=dgx-h100", "layout.sharding=zero2", "layout.gpus_per_node=8", "layout.tensor_parallel=2"], 1, "layout-sharding-not-executable", "layout.sharding", "would run (and use memory) as fsdp", id="zero2-with-tp-runs-as-fsdp"),
    param(["+goal=domain_shift", "inventory=h200-1", "method=sft"], 1, "layout-inventory-gpus", "inventory", "inventory h200-1 has 1 node(s) x 1", id="too-few-gpus"),
    param(["+goal=domain_shift", "inventory=h200-1", "method=sft", "layout.gpus_per_node=1", "layout.nodes=1"], 1, "memory-fit", "inventory", "GB per GPU >", id="memory-does-not-fit"),
    param(["method=lora", "layout.micro_batch=3"], 1, "layout-batch", "method.batch_size", "does not divide by micro batch 3", id="batch-not-divisible"),
    param(["data.path={tmp}/tiny"], 1, "data-floor", "data", "10 examples", id="data-under-hard-floor"),
    param(["data.path={tmp}/root"], 1, "data-root-files", "data.path", "train.jsonl sit in the dataset root", id="files-in-root"),
    param(["data.path={tmp}/missing"], 1, "data-invalid-lines", "data.path", "training/train.jsonl:3: missing field completion", id="missing-fields"),
    param(["data.path={tmp}/malformed"], 1, "data-invalid-lines", "data.path", "training/train.jsonl:5: not valid JSON", id="malformed-json-line"),
    param(["data.path={tmp}/n30", "method=lora", "method.batch_size=64"], 1, "lint-steps-per-epoch", "method.batch_size", "zero optimizer steps", id="steps-per-epoch-below-one"),
    param(["method=lora", "method.lora.adapter_dim=24"], 1, "lint-adapter-dim", "method.lora.adapter_dim", "not a power of two", id="adapter-dim-24"),
    param(["method=lora", "method.min_learning_rate=1e-3"], 1, "lint-min-lr", "method.min_learning_rate", "cannot decay", id="min-lr-above-lr"),
    param(["method=lora", "method.max_seq_length=200000"], 1, "lint-seq-length", "method.max_seq_length", "maximum of 131,072", id="seq-over-model-max"),
    param(["+goal=math_reasoning", "method=grpo", "method.batch_size=12"], 1, "lint-grpo-batch", "method.batch_size", "does not divide by num_generations_per_prompt 8", id="grpo-batch-generations"),
    param(["+goal=math_reasoning", "method=grpo", "method.rewards=[numeric]"], 2, None, "method.rewards", "unknown reward 'numeric'", id="grpo-reward-unknown"),
    param(["method=dpo"], 1, "data-format-method", "data.format", "preference", id="dpo-without-pairs"),
    param(["+goal=domain_shift", "launcher=torchrun"], 1, "launcher-multinode", "launcher.kind", "spans 2 nodes", id="multinode-on-torchrun"),
    param(["method=lora", "method.replay={data: 'builtin:nope'}"], 1, "replay-data", "method.replay.data", "builtin:general", id="replay-builtin-unknown"),
    param(["method=lora", "method.replay={data: /nonexistent/general.txt}"], 1, "replay-data", "method.replay.data", "does not exist", id="replay-file-missing"),
    param(["method=lora", "method.lora.adapter_dim=32"], 1, "serving-lora-rank", "method.lora.adapter_dim", "maximum LoRA rank 16 (goal.serving.max_lora_rank)", id="rank-above-server-max-lora-rank"),
    param(["goal.serving.max_lora_rank=0"], 2, None, "goal.serving.max_lora_rank", "greater than or equal to 1", id="max-lora-rank-zero"),
    param(["publish.push_to_hub=not a repo"], 2, None, "publish.push_to_hub", "not a Hub repo id", id="push-to-hub-not-a-repo"),
    param(["goal.gpu_hour_budget=0.01", "method=lora"], 1, "budget", "goal.gpu_hour_budget", "> budget 0.01", id="over-budget"),
    # --- feasible with a warning: exit 0
    param(["method=lora", "method.learning_rate=1e-3"], 0, "lint-lora-lr", "method.learning_rate", "diverges", id="lora-lr-1e-3"),
    param(["method=lora", "method.lora.adapter_dim=64", "goal.serving.max_lora_rank=64"], 0, "lint-adapter-dim", "method.lora.adapter_dim", "overfit", id="adapter-dim-high-for-data"),
    param(["+goal=safety_alignment"], 0, "data-floor", "data", "below the 5,000 DPO needs", id="dpo-below-soft-floor"),
]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for name in ("tiny", "root", "missing", "malformed", "n30"):
        _dataset(root, name)
    return root


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("delta, code, finding, path, fragment", CASES)
def test_bad_config(capsys, datasets, delta, code, finding, path, fragment):
    args = [a.replace("{tmp}", str(datasets)) for a in delta]
    if not any(a.startswith("+goal=") for a in args):
        args.insert(0, "+goal=tone")
    rc, plan, err = run_json(capsys, *args)
    assert rc == code, err
    assert "Traceback" not in err
    if code == 2:
        assert plan is None
        assert f"at: {path}" in err or f"{path}:" in err, err
        assert fragment in err, err
        assert "fix:" in err
        return
    found = [f for f in plan["findings"] if f["code"] == finding]
    assert found, [f["code"] for f in plan["findings"]]
    assert any(f["path"] == path and fragment in f["message"] + f["fix"] for f in found), found
    severities = {f["severity"] for f in found}
    assert ("error" in severities) == (code == 1)
    assert plan["feasible"] == (code == 0)


def test_malformed_yaml_names_the_problem(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(conf_dir(), conf, ignore=shutil.ignore_patterns("samples"))
    (conf / "goal" / "tone.yaml").write_text("goal:\n  name: tone\n   gap: [style\n")
    with pytest.raises(ConfigError) as err:
        compose(["+goal=tone"], config_dir=str(conf))
    assert "YAML" in err.value.render() or "yaml" in err.value.render()


def test_every_finding_has_code_path_message(capsys):
    rc, plan, _ = run_json(capsys, "+goal=tone", "method=lora", "method.lora.adapter_dim=24",
                           "method.learning_rate=2e-3", "method.min_learning_rate=3e-3")
    assert rc == 1
    codes = {f["code"] for f in plan["findings"]}
    assert {"lint-adapter-dim", "lint-lora-lr", "lint-min-lr"} <= codes  # all problems at once
    for f in plan["findings"]:
        assert f["severity"] in ("error", "warning", "info") and f["code"] and f["path"] and f["message"]
