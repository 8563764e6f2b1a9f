"""A calibration file changes the estimate and the report says so: given with calibration=<file>, or placed in the
team's config folder (the hydra.searchpath folder), where the planner finds the one for the inventory's GPU type
without calibration=; calibration=none keeps the priors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from planner.compose import load

ROOT = Path(__file__).resolve().parents[2]


def calibration(gpu: str, factor: float) -> dict:
    return {
        "gpus": {
            gpu: {
                "device": "cpu (test)",
                "measured_on": "inventory local: a test",
                "memory_factors": {"weights": factor, "activations": factor, "logits": factor},
                "overhead_bytes": 500_000_000,
                "fragmentation": 1.0,
                "mfu": 0.01,
            }
        }
    }


def total(overrides: list[str]) -> tuple[int, object]:
    from planner.core import plan
    from planner.probe import probe
    from planner.tokens import token_counter

    spec, _ = load(["+goal=tone", "model=tiny-llama", "inventory=local", *overrides])
    stats = probe(spec.data, Path.cwd(), token_counter(spec))
    p = plan(spec, stats)
    return p.estimate.memory_per_gpu_bytes.total, spec.calibration


def test_a_calibration_in_the_team_folder_is_used_without_calibration_key(tmp_path):
    team = tmp_path / "team-conf"
    team.mkdir()
    (team / "calibration-h100-sxm.yaml").write_text(yaml.safe_dump(calibration("h100-sxm", 9.0)))  # another GPU
    (team / "calibration-cpu.yaml").write_text(yaml.safe_dump(calibration("cpu", 2.0)))
    searchpath = f"hydra.searchpath=[file://{team}]"
    prior, none = total([])
    assert none is None
    found, cal = total([searchpath])
    assert cal is not None and cal.path == str((team / "calibration-cpu.yaml").resolve())
    assert found != prior
    given, _ = total([f"calibration={team / 'calibration-cpu.yaml'}"])
    assert given == found  # the same file as calibration= gives the same estimate
    off, cal = total([searchpath, "calibration=none"])
    assert cal is None and off == prior


def test_the_report_names_the_team_folder_file(tmp_path):
    team = tmp_path / "team-conf"
    team.mkdir()
    (team / "calibration-cpu.yaml").write_text(yaml.safe_dump(calibration("cpu", 1.5)))
    done = subprocess.run(
        [sys.executable, "-m", "planner", "+goal=tone", "model=tiny-llama", "inventory=local", "dry_run=true",
         f"hydra.searchpath=[file://{team}]"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "calibration-cpu.yaml" in " ".join(done.stdout.split())


def test_a_broken_calibration_file_in_the_folder_is_an_error_naming_it(tmp_path):
    team = tmp_path / "team-conf"
    team.mkdir()
    (team / "calibration-cpu.yaml").write_text("gpus: [unclosed\n")
    done = subprocess.run(
        [sys.executable, "-m", "planner", "+goal=tone", "model=tiny-llama", "inventory=local", "dry_run=true",
         f"hydra.searchpath=[file://{team}]"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2
    assert "calibration-cpu.yaml" in done.stderr and "Traceback" not in done.stderr
