"""Tracking on tiny-llama (CPU): a few real training steps and evaluations per backend, then what the backend stored
is read back with its own reader: TensorBoard's EventAccumulator, MLflow's MlflowClient on the local store, and
the W&B offline run file through wandb's own protobuf records. No mocks: the files are the ones the stages wrote."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from tests.runtime.helpers import read_json, write_bundle
from tests.runtime.helpers import run_stage as _run

pytestmark = pytest.mark.runtime

# 11 steps: the loss is logged at steps 1 and 10 (tone: 50 steps per epoch, logged every 10), evaluated at 5, 10, 11
STEPS = ("method=lora", "method.max_steps=11", "method.val_check_interval=0.1", "eval.max_examples=4")
KEY = "wandb-test-key-0123456789abcdef0123456789abcdef"  # a stand-in for WANDB_API_KEY: it must land in no file


def _bundle(root: Path, backend: str, *stages: str) -> Path:
    bundle = write_bundle(root, "+goal=tone", *STEPS, f"tracking={backend}")
    for stage in stages:
        assert _run(bundle, stage) in (0, 1), stage  # the gate may fail (tiny-llama misses the target): it logs
        assert read_json(bundle / f"run/{stage}/status.json")["state"] in ("completed", "failed")
    return bundle


def _logged(metrics_file: Path, kind: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of `key` in the bundle's own metrics.jsonl lines of `kind` (step or epoch)."""
    lines = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    return [(m["step"], m[key]) for m in lines if m["kind"] == kind]


def _same(read: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [s for s, _ in read] == [s for s, _ in expected]
    assert [v for _, v in read] == pytest.approx([v for _, v in expected], rel=1e-6)


def _no_leaks(bundle: Path) -> None:
    """The stage's tracking environment is put back, and the working folder got nothing."""
    for name in ("TENSORBOARD_LOGGING_DIR", "MLFLOW_TRACKING_URI", "WANDB_DIR", "WANDB_MODE"):
        assert name not in os.environ, name
    assert not any(Path.cwd().glob("mlruns")) and not (Path.cwd() / "wandb").exists()
    assert not (Path.cwd() / "runs").exists() or (Path.cwd() / "runs").resolve() != bundle.parent.resolve()


# ----------------------------------------------------------------------------- TensorBoard


@pytest.fixture(scope="module")
def tensorboard_bundle(tmp_path_factory, tiny_dir) -> Path:
    return _bundle(
        tmp_path_factory.mktemp("tb"), "tensorboard", "validate_data", "train", "baseline_eval", "eval", "gate"
    )


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def _hparams(acc) -> dict:
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {k: v.string_value if v.HasField("string_value") else v.number_value for k, v in start.hparams.items()}


def test_tensorboard_event_files_hold_every_stage_with_the_plans_hyperparameters(tensorboard_bundle):
    from schemas.plan import Plan

    bundle = tensorboard_bundle
    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    root = bundle / "run/tracking/tensorboard" / plan.name  # the bundle names the run; a stage is a run under it
    assert sorted(p.name for p in root.iterdir()) == sorted(["validate_data", "train", "baseline_eval", "eval", "gate"])

    train = _events(root / "train")
    loss = [(e.step, e.value) for e in train.Scalars("train/loss")]
    val = [(e.step, e.value) for e in train.Scalars("eval/loss")]
    # the Trainer's TensorBoardCallback logged the same losses the bundle's own metrics.jsonl holds
    _same(loss, _logged(bundle / "run/train/metrics.jsonl", "step", "train_loss"))
    _same(val, _logged(bundle / "run/train/metrics.jsonl", "epoch", "val_loss"))
    assert [s for s, _ in loss] == [1, 10] and [s for s, _ in val] == [5, 10, 11]
    assert train.Scalars("status/steps_completed")[-1].value == 11
    hp = _hparams(train)
    method = plan.stage("train").method
    assert hp["plan.id"] == plan.id and hp["stage"] == "train" and hp["method.kind"] == "lora"
    assert hp["method.learning_rate"] == pytest.approx(method.learning_rate)
    assert hp["method.lora.adapter_dim"] == method.lora.adapter_dim and hp["layout.micro_batch"] == 8
    text = train.Tensors("plan/hyperparameters/text_summary")[0].tensor_proto.string_val[0].decode()
    assert f"| plan.name | {plan.name} |" in text and f"| method.max_steps | {method.max_steps} |" in text

    scores = {}
    for stage in ("baseline_eval", "eval"):
        acc = _events(root / stage)
        scores[stage] = acc.Scalars("scores/task_score")[0].value
        assert acc.Scalars("scores/n_examples")[0].value == 4
        assert _hparams(acc)["evaluation.metric"] == "rouge_l"
    assert scores["baseline_eval"] == pytest.approx(read_json(bundle / "run/baseline_eval/scores.json")["task_score"])
    assert scores["eval"] == pytest.approx(read_json(bundle / "run/eval/scores.json")["task_score"])
    gate = _events(root / "gate")
    verdict = read_json(bundle / "run/gate/gate.json")
    assert gate.Scalars("gate/pass")[0].value == float(verdict["verdict"] == "pass")
    low, high = verdict["forgetting"]["interval_95"]
    assert gate.Scalars("gate/forgetting/interval_95/low")[0].value == pytest.approx(low)
    assert gate.Scalars("gate/forgetting/interval_95/high")[0].value == pytest.approx(high)
    data = _events(root / "validate_data")
    assert data.Scalars("data/training/records")[0].value == plan.data_stats.training.records
    _no_leaks(bundle)


# ----------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_bundle(tmp_path_factory, tiny_dir) -> Path:
    return _bundle(tmp_path_factory.mktemp("mlflow"), "mlflow", "train", "baseline_eval")


def test_mlflow_local_store_holds_the_bundles_run_and_a_child_run_per_stage(mlflow_bundle):
    import warnings

    from schemas.plan import Plan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # SQLAlchemy 2.1 on MLflow's store
        from mlflow import MlflowClient

        bundle = mlflow_bundle
        plan = Plan.model_validate_json((bundle / "plan.json").read_text())
        store = bundle / "run/tracking/mlflow/mlflow.db"
        assert store.is_file()
        client = MlflowClient(f"sqlite:///{store}")
        experiment = client.get_experiment_by_name("tone")  # the goal's name
        runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
        assert set(runs) == {plan.name, f"{plan.name}/train", f"{plan.name}/baseline_eval"}
        parent = runs[plan.name]  # the run is named after the bundle
        assert parent.data.params["plan.id"] == plan.id and parent.data.tags["ladder.role"] == "bundle"
        method = plan.stage("train").method
        assert float(parent.data.params["method.learning_rate"]) == pytest.approx(method.learning_rate)
        train = runs[f"{plan.name}/train"]
        assert train.data.tags["mlflow.parentRunId"] == parent.info.run_id and train.info.status == "FINISHED"
        assert train.data.params["stage"] == "train" and train.data.params["method.max_steps"] == "11"
        assert train.data.params["run_name"] == f"{plan.name}/train"  # the Trainer's MLflowCallback logged here
        loss = [(m.step, m.value) for m in client.get_metric_history(train.info.run_id, "loss")]
        val = [(m.step, m.value) for m in client.get_metric_history(train.info.run_id, "eval_loss")]
        _same(sorted(loss), _logged(bundle / "run/train/metrics.jsonl", "step", "train_loss"))
        _same(sorted(val), _logged(bundle / "run/train/metrics.jsonl", "epoch", "val_loss"))
        baseline = runs[f"{plan.name}/baseline_eval"]
        scores = read_json(bundle / "run/baseline_eval/scores.json")
        assert baseline.data.metrics["scores/task_score"] == pytest.approx(scores["task_score"])
        assert (bundle / "run/tracking/mlflow/artifacts").parent.is_dir()  # artifacts stay inside the bundle

        # a stage that runs again continues its run (run/<stage>/tracking.json), it does not start another
        (bundle / "run/baseline_eval/status.json").unlink()
        assert _run(bundle, "baseline_eval") == 0
        again = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
        assert len(again) == 3 and again[f"{plan.name}/baseline_eval"].info.run_id == baseline.info.run_id
        history = client.get_metric_history(baseline.info.run_id, "scores/task_score")
        assert len(history) == 2
    _no_leaks(bundle)


# ----------------------------------------------------------------------------- W&B offline


def _wandb_records(path: Path) -> list:
    """The records of a W&B run file (.wandb): wandb's LevelDB-style log of its own protobuf Records, 32 KiB blocks
    of chunks with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) after a 7-byte file
    header (':W&B', magic 0xBEE1, version). wandb 0.31 reads these in its Go core only; this follows its format."""
    from wandb.proto import wandb_internal_pb2

    blob = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", blob[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    records, chunks, pos = [], [], 7
    while pos + 7 <= len(blob):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", blob[pos : pos + 7])
        if kind == 0:
            break
        chunks.append(blob[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


@pytest.fixture(scope="module")
def wandb_bundle(tmp_path_factory, tiny_dir) -> Path:
    os.environ["WANDB_API_KEY"] = KEY  # as the launch scripts pass it; offline mode never needs it
    try:
        return _bundle(tmp_path_factory.mktemp("wandb"), "wandb", "train", "baseline_eval")
    finally:
        del os.environ["WANDB_API_KEY"]


def test_wandb_offline_run_holds_config_and_history_and_never_the_key(wandb_bundle):
    from schemas.plan import Plan

    bundle = wandb_bundle
    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    runs = sorted((bundle / "run/tracking/wandb/wandb").glob("offline-run-*"))
    assert len(runs) == 2
    found = {}
    for folder in runs:
        records = _wandb_records(next(folder.glob("run-*.wandb")))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        config = {i.key: json.loads(i.value_json) for i in run.config.update}
        for r in records:
            if r.WhichOneof("record_type") == "config":
                config.update({i.key: json.loads(i.value_json) for i in r.config.update})
        history = [  # a key with a slash is stored as its parts (nested_key)
            {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        found[run.job_type] = (run, config, history)
    assert set(found) == {"train", "baseline_eval"}
    run, config, history = found["train"]
    assert (run.display_name, run.run_group, run.project) == (f"{plan.name}/train", plan.name, "tone")
    assert (bundle / "run/train/tracking.json").is_file()
    assert read_json(bundle / "run/train/tracking.json")["run_id"] == run.run_id
    assert config["plan.id"] == plan.id and config["method.kind"] == "lora"
    assert config["method.learning_rate"] == pytest.approx(plan.stage("train").method.learning_rate)
    assert config["run_name"] == f"{plan.name}/train"  # the Trainer's WandbCallback added its arguments
    loss = [(h["train/global_step"], h["train/loss"]) for h in history if "train/loss" in h]
    _same(loss, _logged(bundle / "run/train/metrics.jsonl", "step", "train_loss"))
    assert [h["train/global_step"] for h in history if "eval/loss" in h] == [5, 10, 11]
    _, config, history = found["baseline_eval"]
    scores = read_json(bundle / "run/baseline_eval/scores.json")
    logged = [h["scores/task_score"] for h in history if "scores/task_score" in h]
    assert logged == pytest.approx([scores["task_score"]])
    assert config["evaluation.metric"] == "rouge_l"
    # WANDB_API_KEY was in the environment of every stage: no file of the bundle holds it
    for path in bundle.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    _no_leaks(bundle)
