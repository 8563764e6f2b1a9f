"""The method registry: one module per training kind in planner/methods, keyed like the schema and the runtime's
recipes, each naming data formats that exist, with floors and a ladder rung in the shipped knowledge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from planner.methods import METHODS, rules
from schemas.method import TRAIN_KINDS, Dpo, Grpo, Lora, Sft
from schemas.records import FIELDS
from tests.unit.helpers import make_plan

ROOT = Path(__file__).resolve().parents[2]


def test_one_module_per_training_kind():
    modules = sorted(p.stem for p in (ROOT / "planner" / "methods").glob("*.py") if p.stem not in ("__init__", "base"))
    assert modules == sorted(TRAIN_KINDS)
    assert set(METHODS) == set(TRAIN_KINDS)
    assert all(kind == m.kind for kind, m in METHODS.items())


def test_planner_and_runtime_registries_agree():
    """runtime.recipes imports no torch, so a unit test may read its keys (in a fresh interpreter, to be sure)."""
    code = "import sys; from runtime.recipes import RECIPES; print(sorted(RECIPES), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [*repr(sorted(METHODS)).split(), "False"]


def test_formats_labels_floors_and_rungs():
    knowledge = make_plan("+goal=tone").spec.knowledge
    rungs = {rule.method for rule in knowledge.ladder}
    labels = [m.label for m in METHODS.values()]
    assert len(set(labels)) == len(labels)
    for kind, m in METHODS.items():
        assert m.formats and set(m.formats) <= set(FIELDS), kind
        assert kind in knowledge.floors, kind
        assert kind in rungs, kind


@pytest.mark.parametrize(
    "method, base",
    [
        (Lora(), False),
        (Sft(), False),
        (Dpo(), True),
        (Dpo(sft_base="org/model-sft"), False),
        (Grpo(), False),
        (Grpo(cold_start_sft=True), True),
    ],
    ids=["lora", "sft", "dpo", "dpo-with-base", "grpo", "grpo-cold-start"],
)
def test_base_stage(method, base):
    spec = make_plan("+goal=tone").spec
    assert rules(method).base_stage(method, spec) is base
    if base:
        assert rules(method).base_stage_note


def test_estimate_terms():
    assert rules(Dpo()).sequences_per_example == 2
    assert rules(Dpo()).reference_copy(Dpo()) and not rules(Dpo()).reference_copy(Dpo(finetuning_type="lora"))
    assert not rules(Dpo()).reference_forward(Dpo(reference="precomputed"))
    assert rules(Grpo()).completion_tokens(Grpo(max_completion_length=64)) == 64
    assert rules(Grpo()).generations_per_prompt(Grpo(num_generations_per_prompt=4)) == 4
    assert not rules(Grpo()).reference_copy(Grpo()) and rules(Grpo()).reference_copy(Grpo(kl_beta=0.1))
    assert not rules(Grpo()).reference_copy(Grpo(kl_beta=0.1, finetuning_type="lora"))
    for m in (Lora(), Sft()):
        r = rules(m)
        assert (r.sequences_per_example, r.completion_tokens(m), r.reference_copy(m), r.derived(m)) == (1, 0, False, {})
    assert rules(Dpo()).derived(Dpo(finetuning_type="lora")) == {"reference": "adapters_disabled"}


def test_kto_is_planned_from_unpaired_feedback_and_on_request_from_pairs():
    """KTO through the registry: the ladder picks it for answers labelled one by one (DPO needs pairs), an SFT stage
    on the desirable answers comes first, and method=kto trains on preference pairs too."""
    from tests.unit.helpers import make_plan

    feedback = make_plan("+goal=safety_alignment", "data=safety_feedback", "model=tiny-llama", "inventory=local")
    assert feedback.decision.method == "kto" and feedback.decision.pipeline == ("sft", "kto")
    verdicts = {r.method: r.verdict for r in feedback.decision.rungs}
    assert verdicts["dpo"] == "rejected" and verdicts["kto"] == "chosen"
    assert feedback.stage("train_sft").data.use == "desirable"  # type: ignore[union-attr]
    assert feedback.feasible and feedback.stage("train").estimate.memory_per_gpu_bytes.reference_model > 0  # type: ignore[union-attr]
    pairs = make_plan("+goal=safety_alignment", "method=kto", "model=tiny-llama", "inventory=local")
    assert pairs.decision.method == "kto" and pairs.feasible
    assert not [f for f in pairs.findings if f.code == "data-format-method"]
    tone = make_plan("+goal=tone", "method=kto", "model=tiny-llama", "inventory=local")  # prompt/completion data
    assert [f.path for f in tone.findings if f.code == "data-format-method"] == ["data.format"]
