"""Credentials never land in artifacts (planner.secrets, schemas.secrets): `${oc.env:NAME}` stays symbolic in the
free-text keys and the plan's scripts check NAME at run time; a credential resolved into a key that decides what
runs, or a token-like literal anywhere, is refused with its key path and never echoed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from planner.diff import main as diff_main
from planner.paths import conf_dir
from planner.secrets import required_env, token_kind
from tests.unit.helpers import make_plan, run_cli

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hf_s3cretVALUE42"
OTHER = "sk-Zq81mN4vX2pL7tR9wK3c"  # a second secret, in a variable whose name is not a credential-like one
FREE_TEXT_REFS = (
    "goal.description=${oc.env:HF_TOKEN}",
    "data.description=tone data read with ${oc.env:HF_TOKEN}",
    "goal.serving.server=vllm ${oc.env:SERVING_KEY}",
)


def _leaks(folder: Path, *values: str) -> list[str]:
    """Every file under `folder` (the whole bundle) that holds one of `values`."""
    return [
        str(p.relative_to(folder))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and any(v.encode() in p.read_bytes() for v in values)
    ]


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("SERVING_KEY", OTHER)


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_env_references_in_free_text_stay_symbolic(capsys, tmp_path, secret_env, fmt):
    code, out, err = run_cli(capsys, "+goal=tone", *FREE_TEXT_REFS, f"out_dir={tmp_path}", f"report={fmt}")
    assert code == 0, err
    assert SECRET not in out + err and OTHER not in out + err
    assert _leaks(tmp_path, SECRET, OTHER) == []
    [bundle] = [p for p in tmp_path.iterdir() if p.is_dir()]
    plan = json.loads((bundle / "plan.json").read_text())
    assert plan["spec"]["goal"]["description"] == "${oc.env:HF_TOKEN}"
    assert plan["spec"]["data"]["description"] == "tone data read with ${oc.env:HF_TOKEN}"
    assert plan["spec"]["goal"]["serving"]["server"] == "vllm ${oc.env:SERVING_KEY}"
    assert "${oc.env:HF_TOKEN}" in (bundle / "config.yaml").read_text()
    assert "${oc.env:HF_TOKEN}" in (bundle / "report.md").read_text()
    assert "${oc.env:HF_TOKEN}" in out
    scripts = list((bundle / "launch").iterdir())
    assert scripts and all("for name in HF_TOKEN SERVING_KEY; do" in s.read_text() for s in scripts)


def test_acceptance_command_in_a_subprocess(tmp_path):
    """The issue's own check: HF_TOKEN=... python -m planner +goal=tone 'goal.description=${oc.env:HF_TOKEN}'."""
    env = dict(os.environ, HF_TOKEN=SECRET, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "planner", "+goal=tone", "goal.description=${oc.env:HF_TOKEN}", f"out_dir={tmp_path}/s"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert _leaks(tmp_path, SECRET) == []
    assert "${oc.env:HF_TOKEN}" in proc.stdout


def test_symbolic_reference_plans_without_the_variable_and_the_script_checks_it(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code, _, err = run_cli(
        capsys,
        "+goal=tone",
        "model=tiny-llama",
        "inventory=local",
        "goal.description=${oc.env:HF_TOKEN}",
        f"out_dir={tmp_path}",
    )
    assert code == 0, err
    [script] = tmp_path.glob("*/launch/run_local.sh")
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "HF_TOKEN is not set" in proc.stderr
    assert "==> stage" not in proc.stdout  # stopped before the first stage


def test_required_env_names_the_variables():
    plan = make_plan("+goal=tone", "goal.description=uses ${oc.env:HF_TOKEN} and ${oc.env:B_VAR,default}")
    assert required_env(plan.spec) == ("B_VAR", "HF_TOKEN")
    assert required_env(make_plan("+goal=tone").spec) == ()


def test_a_value_that_changes_what_runs_is_resolved(monkeypatch):
    """The plan is the contract: an env reference in a key that decides what runs is resolved when planning."""
    monkeypatch.setenv("TONE_DATA", "builtin:tone")
    monkeypatch.setenv("TEAM", "support-team")
    plan = make_plan("+goal=tone", "data.path=${oc.env:TONE_DATA}", "goal.namespace=${oc.env:TEAM}")
    assert plan.spec.data.path == "builtin:tone"
    assert plan.spec.goal.namespace == "support-team"
    assert plan.artifacts.output_model.startswith("support-team/")


def test_a_credential_in_a_key_that_changes_what_runs_is_refused(capsys, tmp_path, secret_env):
    code, out, err = run_cli(capsys, "+goal=tone", "data.path=${oc.env:HF_TOKEN}", f"out_dir={tmp_path}")
    assert code == 2
    assert "at: data.path" in err and "HF_TOKEN" in err and "remove it" in err
    assert SECRET not in out + err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "path", "kind"),
    [
        ("goal.description=our key is hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "goal.description", "Hugging Face"),
        ("data.path=/data/sk-proj-abc123DEF456ghi789JKL", "data.path", "OpenAI"),
        ("goal.namespace=ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5", "goal.namespace", "GitHub"),
        ("launcher.python=AKIAIOSFODNN7EXAMPLE", "launcher.python", "AWS"),
        ("goal.description=wandb 3f9a1c0e7b2d4f6a8c1e3b5d7f9a2c4e6b8d0f1a", "goal.description", "random"),
        ("goal.description=key Zx8Qw3Lp9Rt2Vb7Nm4Kc6Hj1Fd5Sg0Ya", "goal.description", "random"),
    ],
    ids=["hf", "openai", "github", "aws", "hex-40", "base62"],
)
def test_a_token_like_literal_is_refused_with_its_key_path(capsys, tmp_path, override, path, kind):
    code, out, err = run_cli(capsys, "+goal=tone", override, f"out_dir={tmp_path}")
    assert code == 2, err
    assert f"at: {path}" in err and kind in err
    value = override.split("=", 1)[1].split()[-1].rsplit("/", 1)[-1]
    assert value not in out + err  # named, never echoed
    assert "${oc.env:" in err or "remove it" in err
    assert list(tmp_path.iterdir()) == []


def test_a_token_in_a_goal_file_is_refused_too(capsys, tmp_path):
    team = tmp_path / "team" / "goal"
    team.mkdir(parents=True)
    text = (conf_dir() / "goal" / "tone.yaml").read_text().replace("name: tone", "name: leaky")
    text = text.replace("server: vllm multi-lora", "server: vllm --api-key sk-live0123456789abcdefXYZ")
    (team / "leaky.yaml").write_text(text)
    code, out, err = run_cli(capsys, "+goal=leaky", f"hydra.searchpath=[file://{tmp_path / 'team'}]", "dry_run=true")
    assert code == 2
    assert "at: goal.serving.server" in err
    assert "sk-live0123456789abcdefXYZ" not in out + err


@pytest.mark.parametrize(
    "text",
    [
        "Customer-facing emails come out in the wrong tone (too curt, no apology, no next step).",
        "hf_transfer, sk-learn and ghp_short are library names",
        "Llama-3.1-8B-Instruct-finetuned-v2 and customer_support_emails_v2",
        "TheQuickBrownFoxJumpsOverTheLazyDog2024",
        "commit 9f86d081884c",
        "${oc.env:HF_TOKEN}",
    ],
)
def test_ordinary_text_is_not_taken_for_a_secret(text):
    assert token_kind(text, free_text=True) is None


@pytest.mark.parametrize("fmt", ["markdown", "text", "json"])
def test_plan_diff_never_shows_the_value(capsys, tmp_path, secret_env, fmt):
    base, head = tmp_path / "base", tmp_path / "head"
    shutil.copytree(conf_dir(), base)
    shutil.copytree(conf_dir(), head)
    goal = head / "goal" / "tone.yaml"
    lines = goal.read_text().splitlines()
    lines = ['  description: "${oc.env:HF_TOKEN}"' if ln.startswith("  description:") else ln for ln in lines]
    goal.write_text("\n".join(lines) + "\n")
    code = diff_main(["--base", str(base), "--head", str(head), "goals=tone", f"report={fmt}"])
    out = capsys.readouterr()
    assert code == 1, out.err
    assert SECRET not in out.out + out.err
    assert "${oc.env:HF_TOKEN}" in out.out


def test_a_sweep_table_shows_the_reference_not_the_value(capsys, secret_env):
    code, out, err = run_cli(
        capsys, "-m", "+goal=tone", "goal.description=${oc.env:HF_TOKEN},plain", "dry_run=true", "report=markdown"
    )
    assert code == 0, err
    assert SECRET not in out + err
    assert "HF_TOKEN" in out and "plain" in out  # the swept column (Hydra writes it as $\{oc.env\:HF_TOKEN\})
