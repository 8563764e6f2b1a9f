"""Hostile text: control characters in user strings never reach a terminal or a report raw (planner.printable), and
a YAML alias bomb or an oversized config file is refused before Hydra loads it (planner.config_guard)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner.diff import main as diff_main
from planner.errors import ConfigError
from planner.paths import conf_dir
from planner.printable import json_safe, printable
from tests.unit.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
# Clear screen, bell, carriage return, a one-byte CSI, an OSC 8 hyperlink, a right-to-left override.
HOSTILE = "Wrong tone \x1b[2J\x07 here\r over \x9b31m red \x1b]8;;http://evil\x07link\x1b]8;;\x07 \u202eeman"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar (json.dumps escapes are valid there)."""
    return json.dumps(text)


def _team_goal(tmp_path: Path, name: str, description: str) -> Path:
    """A team's own goal folder (hydra.searchpath) holding the tone goal with another description."""
    folder = tmp_path / "team"
    (folder / "goal").mkdir(parents=True, exist_ok=True)
    text = (conf_dir() / "goal" / "tone.yaml").read_text().replace("name: tone", f"name: {name}")
    lines = [
        f"  description: {_yaml_quoted(description)}" if ln.startswith("  description:") else ln
        for ln in text.splitlines()
    ]
    (folder / "goal" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return folder


def test_printable_escapes_controls_and_keeps_layout():
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("x\x1b[2Jy\x07z\r") == "x\\x1b[2Jy\\x07z\\x0d"
    assert printable("\x9b\u202e\x7f") == "\\x9b\\u202e\\x7f"
    assert RAW.search(printable(HOSTILE)) is None


def test_json_safe_keeps_the_values():
    doc = json.dumps({"d": HOSTILE}, ensure_ascii=False)
    safe = json_safe(doc)
    assert RAW.search(safe) is None
    assert json.loads(safe) == {"d": HOSTILE}


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_reports_and_bundle_carry_no_raw_controls(capsys, tmp_path, fmt):
    team = _team_goal(tmp_path, "hostile", HOSTILE)
    out_dir = tmp_path / "runs"
    code, out, err = run_cli(
        capsys, "+goal=hostile", f"hydra.searchpath=[file://{team}]", f"out_dir={out_dir}", f"report={fmt}"
    )
    assert code == 0, err
    assert RAW.search(out) is None and RAW.search(err) is None
    for path in out_dir.rglob("*"):
        if path.is_file():
            assert RAW.search(path.read_text(encoding="utf-8")) is None, path.name
    [bundle] = [p for p in out_dir.iterdir() if p.is_dir()]
    assert json.loads((bundle / "plan.json").read_text())["spec"]["goal"]["description"] == HOSTILE  # value kept
    if fmt == "json":
        assert json.loads(out)["spec"]["goal"]["description"] == HOSTILE
    else:
        assert "\\x1b[2J" in out and "\\u202e" in out  # shown, visibly
    assert "\\x1b[2J" in (bundle / "report.md").read_text()


def test_error_messages_escape_controls(capsys, tmp_path):
    error = ConfigError("bad \x1b[2J value", path="goal.\x07x", fix="\x1b]8;;http://evil\x07click", problems=["\r!"])
    assert RAW.search(error.render()) is None and "\\x1b[2J" in error.render()
    # A key with escapes in a team's goal file: the schema refuses it and names it, escaped.
    folder = tmp_path / "team"
    (folder / "goal").mkdir(parents=True)
    text = (conf_dir() / "goal" / "tone.yaml").read_text().replace("name: tone", "name: badkey")
    text = text.replace("  gap: style", f"  gap: style\n  {_yaml_quoted(chr(27) + '[2Jextra')}: 1")
    (folder / "goal" / "badkey.yaml").write_text(text)
    code, out, err = run_cli(capsys, "+goal=badkey", f"hydra.searchpath=[file://{folder}]", "dry_run=true")
    assert code == 2
    assert "\\x1b[2Jextra" in err
    assert RAW.search(out + err) is None


@pytest.mark.parametrize("fmt", ["text", "markdown", "annotations"])
def test_plan_diff_escapes_controls(capsys, tmp_path, fmt):
    base, head = tmp_path / "base", tmp_path / "head"
    shutil.copytree(conf_dir(), base)
    shutil.copytree(conf_dir(), head)
    goal = head / "goal" / "tone.yaml"
    lines = [
        f"  description: {_yaml_quoted(HOSTILE)}" if ln.startswith("  description:") else ln
        for ln in goal.read_text().splitlines()
    ]
    goal.write_text("\n".join(lines) + "\n")
    code = diff_main(["--base", str(base), "--head", str(head), "goals=tone", f"report={fmt}"])
    out = capsys.readouterr()
    assert code in (0, 1), out.err  # the description is not part of what runs: a config change only
    assert RAW.search(out.out + out.err) is None
    if fmt != "annotations":
        assert "goal.description" in out.out and "\\x1b[2J" in out.out


# --- config files: size and alias limits, before Hydra reads them -----------------------------------


def _bomb(levels: int = 9) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghijk"[: levels - 1]:
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    return "\n".join(lines) + "\n"


def _planner(tmp_path: Path, *args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )
    return proc, time.perf_counter() - start


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (_bomb(), "aliases"),
        ("a: &a [*a, 1]\nname: loop\n", "aliases"),  # an alias inside its own anchor
        ("x: [" + ", ".join(f"&a{i} {i}" for i in range(1)) + "]\ny: [" + ", ".join(["*a0"] * 1500) + "]\n", "1,500"),
        ("# padding\n" + "k: " + "v" * 300_000 + "\n", "KB"),
    ],
    ids=["billion-laughs", "recursive", "too-many-aliases", "oversized"],
)
def test_a_hostile_config_file_is_refused_quickly(tmp_path, content, why):
    folder = tmp_path / "team" / "goal"
    folder.mkdir(parents=True)
    bad = folder / "bomb.yaml"
    bad.write_text("# @package _global_\n" + content)
    proc, elapsed = _planner(
        tmp_path, "-m", "planner", "+goal=bomb", f"hydra.searchpath=[file://{tmp_path / 'team'}]", "dry_run=true"
    )
    assert proc.returncode == 2, proc.stderr
    assert elapsed < 15
    assert str(bad) in proc.stderr and why in proc.stderr and "fix:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bomb_is_refused_even_when_another_goal_is_picked(tmp_path):
    """Every file of the config folders is checked, not only the ones the goal picks: Hydra may read any of them
    (defaults lists, --cfg, completion)."""
    folder = tmp_path / "team" / "data"
    folder.mkdir(parents=True)
    (folder / "bomb.yaml").write_text(_bomb())
    proc, elapsed = _planner(
        tmp_path, "-m", "planner", "+goal=tone", f"hydra.searchpath=[file://{tmp_path / 'team'}]", "dry_run=true"
    )
    assert proc.returncode == 2 and elapsed < 15
    assert "bomb.yaml" in proc.stderr


def test_plan_diff_refuses_a_bomb_in_a_conf_folder(tmp_path):
    head = tmp_path / "head"
    shutil.copytree(conf_dir(), head)
    (head / "goal" / "bomb.yaml").write_text(_bomb())
    proc, elapsed = _planner(
        tmp_path, "-m", "planner.diff", "--base", str(conf_dir()), "--head", str(head), "goals=tone"
    )
    assert proc.returncode == 2 and elapsed < 15, proc.stderr
    assert str(head / "goal" / "bomb.yaml") in proc.stderr


def test_anchors_within_limits_still_compose(capsys, tmp_path):
    folder = tmp_path / "team" / "goal"
    folder.mkdir(parents=True)
    text = (conf_dir() / "goal" / "tone.yaml").read_text().replace("name: tone", "name: anchored")
    text = text.replace("  target_score: 0.6", "  target_score: &target 0.6\n  baseline_score: *target")
    text = text.replace("  baseline_score: 0.42       # measured with the best prompt\n", "")
    (folder / "anchored.yaml").write_text(text)
    code, _, err = run_cli(capsys, "+goal=anchored", f"hydra.searchpath=[file://{tmp_path / 'team'}]", "dry_run=true")
    assert code in (0, 1), err
