"""The forgetting check through lm-evaluation-harness, offline: a local task YAML (the shipped
conf/samples/general/lm_eval_task.yml, the builtin:general items as an lm_eval task) runs on tiny-llama, its
accuracy is read under the task's own name (not the path it was given by) and the gate judges forgetting on it;
a task whose data is on the Hub fails the stage with the fix when the Hub is out of reach."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schemas.paths import conf_dir
from tests.runtime.helpers import read_json, run_stage, write_bundle
from tests.unit.helpers import make_plan

pytest.importorskip("lm_eval", reason="the eval extra: pip install 'ladder-planner[eval]'")

pytestmark = pytest.mark.runtime

TASK = conf_dir() / "samples" / "general" / "lm_eval_task.yml"
N = 12  # eval.max_examples: the task evaluation's and the benchmark's items


def _tuned_like_the_baseline(bundle: Path) -> None:
    """The tuned side of the gate: the baseline's scores as the tuned model's (a run that changed nothing), and a
    falling loss curve, so only the forgetting check is in question."""
    scores = read_json(bundle / "run/baseline_eval/scores.json")
    eval_dir = bundle / "run/eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "scores.json").write_text(json.dumps({**scores, "stage": "eval", "role": "tuned", "task_score": 0.9}))
    lines = []
    for epoch in range(1, 4):
        lines.append(
            {
                "kind": "epoch",
                "step": 10 * epoch,
                "epoch": epoch,
                "train_loss": 3.0 - 0.3 * epoch,
                "val_loss": 3.1 - 0.3 * epoch,
                "learning_rate": 1e-4,
            }
        )
    (bundle / "run/train").mkdir(parents=True, exist_ok=True)
    (bundle / "run/train/metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_a_local_task_yaml_runs_offline_and_the_gate_reads_its_accuracy(tmp_path, tiny_dir, monkeypatch):
    from runtime.tiny import benchmark_accuracy

    # given relative to the folder the planner runs in: the plan holds the absolute path
    (tmp_path / "tasks").mkdir()
    shutil.copy(TASK, tmp_path / "tasks" / "general.yml")
    shutil.copy(TASK.parent / "benchmark.jsonl", tmp_path / "tasks" / "benchmark.jsonl")
    monkeypatch.chdir(tmp_path)
    bundle = write_bundle(
        tmp_path / "runs",
        "+goal=tone",
        "goal.target_score=0.5",
        "eval.general_benchmark=tasks/general.yml",
        f"eval.max_examples={N}",
    )
    plan = read_json(bundle / "plan.json")
    assert plan["spec"]["eval"]["general_benchmark"] == str(tmp_path / "tasks" / "general.yml")
    monkeypatch.chdir(bundle)  # the stage runs elsewhere: relative data_files are read from the YAML's folder

    assert run_stage(bundle, "baseline_eval") == 0
    scores = read_json(bundle / "run/baseline_eval/scores.json")
    assert scores["general_note"] == "lm_eval ladder_general acc"  # the YAML's task name, not its path
    assert scores["n_general"] == N and len(scores["general_items"]) == N
    assert set(scores["general_items"]) <= {0, 1}
    # the same items and scoring as builtin:general: the same accuracy
    first = tmp_path / "first.jsonl"
    first.write_text("".join((TASK.parent / "benchmark.jsonl").read_text().splitlines(keepends=True)[:N]))
    assert scores["general_score"] == pytest.approx(benchmark_accuracy(tiny_dir, first))
    assert scores["general_score"] == pytest.approx(sum(scores["general_items"]) / N)

    _tuned_like_the_baseline(bundle)
    assert run_stage(bundle, "gate") == 0
    gate = read_json(bundle / "run/gate/gate.json")
    assert gate["general"]["baseline"] == gate["general"]["tuned"] == pytest.approx(scores["general_score"])
    assert gate["general"]["benchmark"] == str(tmp_path / "tasks" / "general.yml")
    forgetting = next(c for c in gate["checks"] if c["name"] == "forgetting")
    assert forgetting["passed"], forgetting
    assert gate["forgetting"]["n_items"] == N  # paired over the task's items


def test_a_local_group_reports_under_the_group_name_with_every_members_items(tmp_path, tiny_dir):
    """A group's accuracy is reported under the group, its items are its members' (lm_eval keys the samples by
    member task)."""
    from runtime.evaluate.benchmark import _lm_eval
    from runtime.models import load_model, load_tokenizer
    from runtime.tiny import benchmark_accuracy

    rows = (TASK.parent / "benchmark.jsonl").read_text().splitlines(keepends=True)
    for name, part in (("part_a", rows[:5]), ("part_b", rows[5:8])):
        (tmp_path / f"{name}.jsonl").write_text("".join(part))
        text = TASK.read_text().replace("task: ladder_general", f"task: {name}")
        (tmp_path / f"{name}.yaml").write_text(text.replace("test: benchmark.jsonl", f"test: {name}.jsonl"))
    group = tmp_path / "both.yaml"  # lm_eval finds a group by its name in the folder's *.yaml
    group.write_text(
        "group: both\ntask: [part_a, part_b]\naggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n"
    )
    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local")
    model, tok = load_model(plan), load_tokenizer(plan)
    score, n, note, items = _lm_eval(model, tok, str(group), None)
    assert note == "lm_eval both acc" and n == 8 and items is not None and len(items) == 8
    assert score == pytest.approx(sum(items) / 8)
    first = tmp_path / "first.jsonl"
    first.write_text("".join(rows[:8]))
    assert score == pytest.approx(benchmark_accuracy(tiny_dir, first))


def test_a_hub_task_offline_fails_the_stage_with_the_fix(tmp_path, tiny_dir, monkeypatch):
    """A task whose dataset is a Hub repository (as mmlu's and arc_easy's are), with the Hub out of reach: the
    baseline evaluation stops before anything trains, saying why and what to do."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    text = TASK.read_text().replace("task: ladder_general", "task: hub_arc")
    text = text.replace("dataset_path: json", "dataset_path: allenai/ai2_arc\ndataset_name: ARC-Easy")
    text = text.replace("dataset_kwargs:\n  data_files:\n    test: benchmark.jsonl\n", "")
    (tmp_path / "hub_arc.yml").write_text(text)
    bundle = write_bundle(
        tmp_path / "runs", "+goal=tone", f"eval.general_benchmark={tmp_path / 'hub_arc.yml'}", "eval.max_examples=2"
    )
    assert run_stage(bundle, "baseline_eval") == 1
    status = read_json(bundle / "run/baseline_eval/status.json")
    assert status["state"] == "failed"
    message = status["error"]
    assert "'hub_arc' reads its dataset from the Hugging Face Hub" in message
    assert "HF_HUB_OFFLINE" in message and "local task YAML" in message and "builtin:general" in message
    assert not (bundle / "run/baseline_eval/scores.json").exists()
