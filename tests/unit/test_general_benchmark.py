"""eval.general_benchmark as the planner resolves it: a local lm_eval task YAML becomes the absolute path the stages
read (they run elsewhere), a missing one is refused with the fix; builtin and lm_eval task names pass unchanged."""

from __future__ import annotations

import shutil

import pytest

from planner.compose import load
from planner.errors import ConfigError
from schemas.paths import conf_dir
from tests.unit.helpers import make_plan

TASK = conf_dir() / "samples" / "general" / "lm_eval_task.yml"


def test_a_task_yaml_is_planned_by_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "tasks").mkdir()
    shutil.copy(TASK, tmp_path / "tasks" / "general.yml")
    monkeypatch.chdir(tmp_path)
    p = make_plan("+goal=tone", "eval.general_benchmark=tasks/general.yml")
    want = str(tmp_path / "tasks" / "general.yml")
    assert p.spec.eval.general_benchmark == want
    evaluations = [s.evaluation for s in p.stages if s.evaluation is not None]
    assert evaluations and {e.general_benchmark for e in evaluations} == {want}
    assert {e.general_benchmark_path for e in evaluations} == {None}


@pytest.mark.parametrize("name", ["builtin:general", "mmlu", "arc_easy"])
def test_names_pass_unchanged(name):
    assert make_plan("+goal=tone", f"eval.general_benchmark={name}").spec.eval.general_benchmark == name


def test_a_missing_task_file_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(["+goal=tone", f"eval.general_benchmark={tmp_path / 'nope.yaml'}"])
    text = err.value.render()
    assert "eval.general_benchmark=" in text and "nope.yaml: no such file" in text
    assert "builtin:general" in text and "task YAML" in text


def test_the_shipped_task_names_the_shipped_items():
    import yaml

    task = yaml.safe_load(TASK.read_text())
    assert task["task"] == "ladder_general"
    assert (TASK.parent / task["dataset_kwargs"]["data_files"]["test"]).is_file()
