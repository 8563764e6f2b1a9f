"""Golden bundles: what render() compiles for a few reviewed cases, byte for byte.

A change to the planner or the templates that changes a bundle fails here until the goldens are
regenerated and the diff is reviewed with the change:

    UPDATE_GOLDENS=1 python -m pytest tests/unit/test_goldens.py

Each case holds its launch/ scripts as rendered, and plan.digest.json: the few parts of the plan a
reviewer wants to see move (the id, the decision, findings by code, each stage's name, order and
command, and each training stage's resolved method kind, layout and memory per GPU). Not plan.json
whole, nor config.yaml: both carry the spec and its knowledge tables, so one knowledge number would
rewrite every case. Their format is pinned in test_render.py (round trip, header), and what the
plan decides from them shows in the digest. report.md is the report's own business (test_report.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from planner.launchers import LAUNCHERS
from planner.render import render
from schemas.plan import Plan, Stage
from tests.unit.helpers import make_plan

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDENS", "") == "1"
REPORT = "# report (not part of the goldens)\n"
DIGEST = "plan.digest.json"
SHORT = 100  # a list or record this short stays on one line of the digest

CASES: dict[str, tuple[str, ...]] = {
    "tone-dgx-h100": ("+goal=tone", "inventory=dgx-h100", "launcher=slurm"),
    "sft-8b-h100-2node": (
        "+goal=domain_shift",
        "model=llama-3.1-8b-instruct",
        "inventory=h100-2node",
        "method=sft",
        "launcher=slurm",
    ),
    "lora-70b-l40s": (
        "+goal=tone",
        "model=llama-3.1-70b-instruct",
        "inventory=l40s-4",
        "method=lora",
        "model.config=meta/llama-3.1-70b-instruct@v1.0.0+L40",
        "launcher=slurm",
    ),
    "dpo-chain": ("+goal=safety_alignment", "launcher=slurm"),
    "local-cpu": ("+goal=tone", "model=tiny-llama", "inventory=local"),
    "tone-h200-torchrun": ("+goal=tone", "inventory=h200-1"),  # auto: a GPU node without a scheduler
}


def digest(plan: Plan) -> dict[str, Any]:
    """What a reviewer wants to see move in a plan, without the spec and the knowledge tables it came from."""
    decision = plan.decision
    return {
        "id": plan.id,
        "feasible": plan.feasible,
        "decision": {
            "method": decision.method,
            "pipeline": list(decision.pipeline),
            "rungs": {rung.method: rung.verdict for rung in decision.rungs},
            "launcher": decision.launcher,
            "config_urn": decision.config_urn,
            "serving": decision.serving.kind,
        },
        "findings": [f"{f.severity} {f.code} ({f.path})" for f in plan.findings],
        "stages": [_stage(stage) for stage in plan.stages],
    }


def _stage(stage: Stage) -> dict[str, Any]:
    """A stage's place and command; a training stage's resolved method kind, layout and memory per GPU too."""
    out: dict[str, Any] = {"name": stage.name, "after": list(stage.after), "argv": list(stage.argv)}
    if stage.method is not None:
        out["method"] = stage.method.kind
        out["layout"] = stage.layout.model_dump(mode="json") if stage.layout is not None else None
        memory = stage.estimate.memory_per_gpu_bytes if stage.estimate is not None else None
        out["memory_per_gpu"] = None if memory is None else {"total": memory.total, "capacity": memory.capacity}
    return out


def _dump(value: Any, indent: str = "") -> str:
    """JSON, a value to a line; a list or record that fits in SHORT characters on one line."""
    flat = json.dumps(value)
    if not isinstance(value, (dict, list)) or not value or len(indent) + len(flat) <= SHORT:
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    return "[\n" + ",\n".join(inner + _dump(v, inner) for v in value) + f"\n{indent}]"


def _golden_files(plan: Plan) -> dict[str, str]:
    """The reviewed files of a case: its launch scripts as rendered, and the plan's digest."""
    files = {rel: text for rel, text in render(plan, REPORT).items() if rel.startswith("launch/")}
    return {DIGEST: _dump(digest(plan)) + "\n", **files}


@pytest.mark.parametrize("case", list(CASES))
def test_bundle_matches_golden(case):
    files = _golden_files(make_plan(*CASES[case]))
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
    stored = {
        p.relative_to(folder).as_posix(): p.read_bytes().decode() for p in sorted(folder.rglob("*")) if p.is_file()
    }
    assert sorted(stored) == sorted(files), "files added or removed: regenerate with UPDATE_GOLDENS=1 and review"
    for rel, text in files.items():
        assert stored[rel] == text, f"{case}/{rel} changed: regenerate with UPDATE_GOLDENS=1 and review the diff"


def test_golden_cases_cover_every_launcher_and_shape():
    plans = {case: make_plan(*overrides) for case, overrides in CASES.items()}
    files = {case: render(plan, REPORT) for case, plan in plans.items()}
    launchers = {plan.decision.launcher for plan in plans.values()}
    assert launchers == set(LAUNCHERS), f"no golden case for launcher(s) {sorted(set(LAUNCHERS) - launchers)}"
    for case, plan in plans.items():
        assert LAUNCHERS[plan.decision.launcher].run_script in files[case], case
    assert "launch/train_sft.sbatch" in files["dpo-chain"]  # a pipeline of two training stages
    assert "#SBATCH --nodes=2" in files["lora-70b-l40s"]["launch/train.sbatch"]  # a stage over two nodes
    assert "torch.distributed.run --standalone --nnodes 1" in files["tone-h200-torchrun"]["launch/run_torchrun.sh"]
    bundles = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir() and p.name != "diff")  # diff/: test_diff.py
    assert bundles == sorted(CASES) or UPDATE


def test_digest_leaves_out_the_spec():
    """A knowledge number that moves no decision leaves the digest as it was, but for the id."""
    base = make_plan(*CASES["local-cpu"])
    nudged = make_plan(*CASES["local-cpu"], "knowledge.estimator.mfu=0.31")
    assert base.id != nudged.id
    assert {**digest(nudged), "id": base.id} == digest(base)
