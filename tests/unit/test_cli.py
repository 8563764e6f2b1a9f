"""The CLI from the outside: exit codes, JSON-only stdout, no files in dry runs, no heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from planner.paths import conf_dir
from schemas.method import BY_KIND
from tests.unit.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_json_report_is_the_only_stdout(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "+goal=tone", "dry_run=true", "report=json")
    assert code == 0
    plan = json.loads(out)
    for key in ("id", "feasible", "decision", "layout", "estimate", "findings"):
        assert key in plan
    assert plan["decision"]["method"] == "lora"
    assert set(plan["layout"]) >= {
        "nodes",
        "gpus_per_node",
        "tensor_parallel",
        "pipeline_parallel",
        "data_parallel",
        "micro_batch",
        "global_batch",
    }
    assert plan["estimate"]["memory_per_gpu_bytes"]["total"] > 0
    assert list(tmp_path.iterdir()) == []  # dry run: nothing written, no Hydra outputs/ or logs


@pytest.mark.parametrize("fmt, marker", [("text", "decision: lora"), ("markdown", "## Decision: lora")])
def test_readable_reports(capsys, fmt, marker):
    code, out, _ = run_cli(capsys, "+goal=tone", "dry_run=true", f"report={fmt}")
    assert code == 0 and marker in out
    assert "memory" in out.lower() and "GPU-hours" in out


def test_help_lists_goals(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "tone" in out and "exit:" in out


def test_subprocess_exit_codes_and_no_traceback(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "planner", *args, "dry_run=true"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_env(),
            timeout=60,
        )

    ok = run("+goal=tone")
    assert ok.returncode == 0, ok.stderr
    bad = run("+goal=tone", "no_such_key=1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "no_such_key" in bad.stderr
    infeasible = run("+goal=domain_shift", "inventory=h200-1", "method=sft")
    assert infeasible.returncode == 1 and "ERROR" in infeasible.stdout
    assert list(tmp_path.iterdir()) == []


def test_planning_imports_no_torch():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "planner", "+goal=tone", "dry_run=true", "report=json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    heavy = {"torch", "transformers", "peft", "trl"}
    loaded = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not heavy & loaded
    assert "planner" in loaded or "planner.core" in loaded  # the import log is real


def test_import_planner_is_light():
    code = "import sys, planner, schemas; print(sorted(m for m in ('torch','transformers','peft','trl') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.stdout.strip() == "[]", proc.stderr


@pytest.mark.parametrize("kind", ["lora", "sft", "dpo", "grpo", "prompting", "rag", "auto"])
def test_method_yaml_matches_schema_defaults(kind):
    """conf/method/<kind>.yaml documents the defaults; the schema is the single source of truth."""
    written = yaml.safe_load((conf_dir() / "method" / f"{kind}.yaml").read_text())
    model = BY_KIND[kind]
    assert model.model_validate(written) == model(), f"conf/method/{kind}.yaml drifted from {model.__name__}()"


def test_generated_docs_are_current():
    proc = subprocess.run(
        [sys.executable, "-m", "planner.docs", "--check"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "key, value, read",
    [
        ("goal.deadline_hours", "5", lambda p: p.spec.goal.deadline_hours == 5),
        ("goal.namespace", "team-a", lambda p: p.artifacts.output_model.startswith("team-a/")),
        ("inventory.price_per_gpu_hour", "2.5", lambda p: p.spec.inventory.price_per_gpu_hour == 2.5),
    ],
)
def test_documented_keys_need_no_plus(key, value, read):
    """A key the schema documents is set as key=value even when no YAML file lists it."""
    from tests.unit.helpers import make_plan

    assert read(make_plan("+goal=tone", f"{key}={value}"))


def test_a_typo_in_a_key_gets_the_nearest_name(capsys):
    code, _, err = run_cli(capsys, "+goal=tone", "goal.namspace=x", "dry_run=true")
    assert code == 2 and "goal.namspace" in err and "Did you mean 'namespace'?" in err
