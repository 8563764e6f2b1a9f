"""Golden bundles: what render() compiles for a few reviewed cases, byte for byte.

A change to the planner or the templates that changes a bundle fails here until the goldens are
regenerated and the diff is reviewed with the change:

    UPDATE_GOLDENS=1 python -m pytest tests/unit/test_goldens.py

Each case holds plan.json, config.yaml and launch/*; report.md is the report's own business.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from planner.paths import conf_dir
from planner.render import render
from tests.unit.helpers import make_plan

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDENS", "") == "1"
REPORT = "# report (not part of the goldens)\n"

CASES: dict[str, tuple[str, ...]] = {
    "tone-dgx-h100": ("+goal=tone", "inventory=dgx-h100", "launcher=slurm"),
    "sft-8b-h100-2node": ("+goal=domain_shift", "model=llama-3.1-8b-instruct", "inventory=h100-2node", "method=sft",
                          "launcher=slurm"),
    "lora-70b-l40s": ("+goal=tone", "model=llama-3.1-70b-instruct", "inventory=l40s-4", "method=lora",
                      "model.config=meta/llama-3.1-70b-instruct@v1.0.0+L40", "launcher=slurm"),
    "dpo-chain": ("+goal=safety_alignment", "launcher=slurm"),
    "local-cpu": ("+goal=tone", "model=tiny-llama", "inventory=local"),
}


def _golden_files(files: dict[str, str]) -> dict[str, str]:
    """The reviewed files, with where this checkout's conf/ lies (the resolved builtin data, replay text and
    benchmark paths in plan.json) written as <conf>, so the goldens hold on any machine."""
    conf = str(conf_dir())
    return {rel: text.replace(conf, "<conf>") for rel, text in files.items() if rel != "report.md"}


@pytest.mark.parametrize("case", list(CASES))
def test_bundle_matches_golden(case):
    files = _golden_files(render(make_plan(*CASES[case]), REPORT))
    folder = GOLDEN / case
    if UPDATE:
        for old in sorted(folder.rglob("*"), reverse=True) if folder.exists() else []:
            if old.is_dir():
                old.rmdir()
            else:
                old.unlink()
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(text.encode())
    assert folder.is_dir(), f"no goldens for {case}: run UPDATE_GOLDENS=1 pytest {Path(__file__).name}"
    stored = {p.relative_to(folder).as_posix(): p.read_bytes().decode()
              for p in sorted(folder.rglob("*")) if p.is_file()}
    assert sorted(stored) == sorted(files), "files added or removed: regenerate with UPDATE_GOLDENS=1 and review"
    for rel, text in files.items():
        assert stored[rel] == text, f"{case}/{rel} changed: regenerate with UPDATE_GOLDENS=1 and review the diff"


def test_golden_cases_cover_every_launcher_and_shape():
    files = {case: render(make_plan(*overrides), REPORT) for case, overrides in CASES.items()}
    assert "launch/run_local.sh" in files["local-cpu"]
    assert "launch/train_sft.sbatch" in files["dpo-chain"]
    assert "#SBATCH --nodes=2" in files["lora-70b-l40s"]["launch/train.sbatch"]
    bundles = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name != "diff")  # diff/: test_diff.py
    assert bundles == sorted(CASES) or UPDATE
