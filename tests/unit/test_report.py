"""The readable reports show the recipe: each training stage's resolved hyperparameters, marked by source."""

from __future__ import annotations

import re

import pytest

from planner.report import as_json, markdown, text
from planner.report_format import WIDTH
from planner.report_recipe import MARKS, overridden
from schemas.plan import Plan
from tests.unit.helpers import make_plan, run_cli

TINY = ("model=tiny-llama", "inventory=local")


@pytest.fixture(scope="module")
def dpo() -> Plan:
    return make_plan("+goal=safety_alignment", *TINY)


@pytest.fixture(scope="module")
def tone_override() -> Plan:
    return make_plan("+goal=tone", *TINY, "method.learning_rate=1e-3")


def _text_stage(report: str, stage: str) -> str:
    """One stage's block of the text report's recipe section."""
    section = report[report.index("\nrecipe per training stage:") : report.index("\nlayout:")]
    blocks = re.split(r"\n  (?=\w+: )", section)
    return next(b for b in blocks if b.startswith(f"{stage}: "))


def _md_stage(report: str, stage: str) -> str:
    section = report[report.index("## Recipe") : report.index("## Layout")]
    return section[section.index(f"### `{stage}`") :].split("\n### ")[0]


def test_text_report_shows_learning_rate_and_epochs_per_training_stage(dpo):
    assert [s.name for s in dpo.training_stages] == ["train_sft", "train"]
    report = text(dpo)
    for stage in dpo.training_stages:
        m = stage.method
        block = _text_stage(report, stage.name)
        assert block.startswith(f"{stage.name}: {m.kind}, all weights")
        assert re.search(rf"^\s+learning rate\s+{re.escape(f'{m.learning_rate:g}')}\W", block, re.M), block
        assert f"cosine to {m.effective_min_lr:g}" in block
        assert re.search(rf"^\s+epochs\s+{m.epochs}\W", block, re.M), block
        assert stage.layout is not None
        assert re.search(
            rf"^\s+global batch\s+{stage.layout.global_batch} = micro batch {stage.layout.micro_batch} "
            rf"x accumulation {stage.layout.grad_accum} x DP {stage.layout.data_parallel}",
            block,
            re.M,
        )
        assert re.search(r"^\s+GPU-hours\s+\d", block, re.M) and re.search(r"^\s+memory per GPU\s+\d", block, re.M)
    sft, dpo_stage = _text_stage(report, "train_sft"), _text_stage(report, "train")
    assert "learning rate   0.0003†" in sft and "epochs          5†" in sft  # tiny-llama's config recommends them
    assert "replay          builtin:general x 3† per task record" in sft
    assert "DPO             beta 0.1, reference copy" in dpo_stage and "replay" not in dpo_stage
    assert "recommended by local/tiny-llama@v1.0.0+CPU" in report


def test_markdown_report_shows_learning_rate_and_epochs_per_training_stage(dpo):
    report = markdown(dpo)
    assert report.index("## Decision") < report.index("## Recipe") < report.index("## Layout")
    for stage in dpo.training_stages:
        m = stage.method
        block = _md_stage(report, stage.name)
        assert re.search(rf"^\| learning rate \| {re.escape(f'{m.learning_rate:g}')}\W", block, re.M), block
        assert re.search(rf"^\| epochs \| {m.epochs}\W", block, re.M), block
    assert "| learning rate | 0.0003†, cosine to 3e-05 (0.1 x lr), warmup 10† steps |" in report


def test_override_is_marked_with_the_recommended_value_beside_it(tone_override):
    stage = tone_override.stage("train")
    assert stage.method_sources["learning_rate"] == "override"
    assert overridden(tone_override, stage) == [("learning_rate", 0.001, 0.004)]
    report = text(tone_override)
    block = _text_stage(report, "train")
    assert f"learning rate   0.001{MARKS['override']}, cosine to 0.0001" in block
    assert "method.learning_rate 0.001 overrides the recommended 0.004" in block
    assert "rank 16†, alpha 32†" in block  # the rest of the recommended recipe is kept
    md = markdown(tone_override)
    assert "| learning rate | 0.001\\*, cosine to 0.0001" in md
    assert "- `method.learning_rate` 0.001 overrides the recommended 0.004" in md


def test_no_override_no_overridden_line():
    plan = make_plan("+goal=tone", *TINY)
    assert overridden(plan, plan.stage("train")) == []
    assert "overrides the recommended" not in text(plan) and "overrides the recommended" not in markdown(plan)
    assert "learning rate   0.004†" in text(plan)


@pytest.mark.parametrize(
    "overrides",
    [
        ("+goal=safety_alignment", *TINY),
        ("+goal=math_reasoning", *TINY),
        ("+goal=tone",),
        ("+goal=safety_alignment",),
        ("+goal=tone", "model=llama-3.1-70b-instruct", "inventory=l40s-4"),
    ],
)
def test_text_report_fits_the_width(overrides):
    report = text(make_plan(*overrides))
    assert "recipe per training stage:" in report
    assert [line for line in report.splitlines() if len(line) > WIDTH] == []


def test_grpo_stage_shows_generations_and_rewards():
    block = _text_stage(text(make_plan("+goal=math_reasoning", *TINY)), "train")
    assert block.startswith("train: grpo, all weights")
    assert "8 generations per prompt, completion length 12† tokens" in block
    assert "numeric_match†" in block


def test_no_training_no_recipe():
    plan = make_plan("+goal=product_knowledge")
    assert plan.training_stages == ()
    assert "recipe" not in text(plan) and "## Recipe" not in markdown(plan)


def test_json_report_is_the_plan(tone_override):
    assert Plan.model_validate_json(as_json(tone_override)) == tone_override
    assert as_json(tone_override) == tone_override.model_dump_json(indent=2) + "\n"


def test_cli_text_report_names_learning_rate_and_epochs(capsys):
    """The acceptance check: the dry-run report shows the learning rate and the epochs."""
    code, out, _ = run_cli(capsys, "+goal=tone", *TINY, "dry_run=true")
    assert code == 0
    assert re.search(r"learning.rate|\blr\b", out, re.I) and re.search(r"epoch", out, re.I)
