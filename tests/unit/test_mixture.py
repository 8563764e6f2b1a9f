"""Mixtures of datasets with weights (data.mixture): how many records each part gives (planner.mixture.draws), what
the plan says about the mix (data_stats.mixture, the stages' data), and the errors that name the part's key path."""

from __future__ import annotations

import json

import pytest
from pytest import param

from planner.mixture import draws
from tests.unit.helpers import make_plan, run_json


@pytest.mark.parametrize(
    ("pools", "weights", "strategy", "expected"),
    [
        param([400, 40], [3, 1], "all_exhausted", [400, 133], id="all-exhausted-upsamples-the-small-share"),
        param([400, 40], [3, 1], "first_exhausted", [120, 40], id="first-exhausted-downsamples-the-large-one"),
        param([400, 40], [0.75, 0.25], "first_exhausted", [120, 40], id="weights-are-proportions"),
        param([100, 100], [1, 1], "first_exhausted", [100, 100], id="equal-shares-of-equal-sizes-take-all"),
        param([100, 50, 10], [1, 1, 2], "all_exhausted", [100, 100, 200], id="three-parts"),
        param([100, 0], [1, 1], "all_exhausted", [100, 0], id="an-empty-part-gives-none-and-sizes-nothing"),
        param([0, 0], [1, 1], "first_exhausted", [0, 0], id="all-empty"),
    ],
)
def test_draws(pools, weights, strategy, expected):
    assert draws(pools, weights, strategy) == expected


def test_support_mix_plans_each_part_and_the_mix():
    plan = make_plan("+goal=tone", "data=support_mix", "model=tiny-llama", "inventory=local")
    stats = plan.data_stats
    assert (stats.source, stats.counts) == ("mixture", "measured")
    got = [(p.key, p.path, p.format, p.weight, p.share, p.stats.training.records, p.pool, p.drawn) for p in stats.mixture]
    assert got == [
        ("data.mixture[0]", "builtin:alpaca", "alpaca", 3.0, 0.75, 400, 400, 400),
        ("data.mixture[1]", "builtin:support_format", "prompt_completion", 1.0, 0.25, 40, 40, 133),
    ]
    # the mix is what the floors, the steps and the estimate count: 533 rows, of which 440 distinct
    assert (stats.training.records, stats.training.rows, stats.examples) == (533, 533, 440)
    assert stats.validation is not None and stats.validation.records == 80
    assert stats.training.tokens_total > sum(p.stats.training.tokens_total for p in stats.mixture)  # repeats count
    data = plan.stage("train").data
    assert data is not None and data.mixture is not None and data.root is None
    assert data.mixture.seed == plan.stage("train").method.seed
    assert data.mixture.stopping_strategy == "all_exhausted"
    assert [(p.key, p.pool, p.drawn, p.holdout) for p in data.mixture.parts] == [
        ("data.mixture[0]", 400, 400, False),
        ("data.mixture[1]", 40, 133, False),
    ]
    assert all(f.sha256 and f.path.startswith("/") for p in data.mixture.parts for f in p.files)
    mixed = next(f for f in plan.findings if f.code == "data-mixture")
    assert "533 training records mixed (all_exhausted)" in mixed.message
    assert "data.mixture[1] builtin:support_format 133 of 40 (25%, 3.33x, repeats)" in mixed.message


def test_the_weights_and_the_strategy_change_the_mix_and_the_plan_id():
    base = make_plan("+goal=tone", "data=support_mix", "model=tiny-llama", "inventory=local")
    first = make_plan(
        "+goal=tone", "data=support_mix", "data.stopping_strategy=first_exhausted", "model=tiny-llama", "inventory=local"
    )
    assert [p.drawn for p in first.data_stats.mixture] == [120, 40]
    assert first.data_stats.training.records == 160
    assert first.estimate.steps < base.estimate.steps
    assert len({base.id, first.id}) == 2
    heavier = make_plan("+goal=tone", "data=support_mix", "data.mixture.1.weight=3", "model=tiny-llama", "inventory=local")
    assert [p.drawn for p in heavier.data_stats.mixture] == [400, 400]


def _folder(root, records: list, validation: list | None = None):
    (root / "training").mkdir(parents=True)
    (root / "training" / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if validation is not None:
        (root / "validation").mkdir()
        (root / "validation" / "v.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    return root


def _mixture(a, b, *extra: str) -> tuple[str, ...]:
    parts = f"[{{path: '{a}', format: prompt_completion, weight: 1}}, {{path: '{b}', format: alpaca, weight: 1}}]"
    return ("+goal=tone", "method=lora", "data.path=null", f"data.mixture={parts}", *extra)


def test_a_part_without_validation_holds_out_its_share_before_mixing(tmp_path, capsys):
    pc = [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(200)]
    al = [{"instruction": "Reply.", "input": f"Email {i}", "output": f"Reply {i}."} for i in range(100)]
    a = _folder(tmp_path / "a", pc, pc[:10])
    b = _folder(tmp_path / "b", al)  # no validation/: 10 of its 100 validate
    code, plan, err = run_json(capsys, *_mixture(a, b))
    assert code in (0, 1), err
    parts = plan["data_stats"]["mixture"]
    assert [(p["pool"], p["held_out"], p["drawn"]) for p in parts] == [(200, 0, 90), (90, 10, 90)]
    assert plan["data_stats"]["validation"]["records"] == 20  # 10 + the 10 held out
    hold = next(f for f in plan["findings"] if f["code"] == "data-validation-split")
    assert hold["path"] == "data.mixture[1].path" and "(10 of 100)" in hold["message"]


def test_bad_lines_of_a_part_are_errors_at_its_key_path_with_file_and_line(tmp_path, capsys):
    pc = [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(200)]
    al = [{"instruction": "Reply.", "input": f"Email {i}", "output": f"Reply {i}."} for i in range(100)]
    a = _folder(tmp_path / "a", pc, pc[:10])
    b = _folder(tmp_path / "b", [*al[:5], {"instruction": "no output"}, *al[5:], al[0]], al[:5])
    code, plan, err = run_json(capsys, *_mixture(a, b))
    assert code == 1, err
    bad = next(f for f in plan["findings"] if f["code"] == "data-invalid-lines")
    assert (bad["severity"], bad["path"]) == ("error", "data.mixture[1].path")
    assert "training/t.jsonl:6: missing field output" in bad["message"]
    assert "instruction, output" in bad["fix"]
    dup = next(f for f in plan["findings"] if f["code"] == "data-quality" and "duplicate record" in f["message"])
    assert dup["path"] == "data.mixture[1].path" and "training/t.jsonl:102: duplicate of training/t.jsonl:1" in (
        dup["message"]
    )
    leaks = [f["path"] for f in plan["findings"] if "repeat a training record" in f["message"]]
    assert leaks == ["data.mixture[0].path", "data.mixture[1].path"]  # both validations are training's first lines


@pytest.mark.parametrize(
    ("overrides", "path", "error"),
    [
        param(
            ["data=support_mix", "data.mixture.1.format=messages"],
            "data.mixture[1].format",
            "messages records train as messages, the mixture as prompt_completion (data.format)",
            id="parts-train-alike",
        ),
        param(
            ["data=support_mix", "data.format=alpaca"],
            "data.format",
            "alpaca trains as prompt_completion, so set data.format=prompt_completion",
            id="mixture-format-is-a-shape",
        ),
        param(["data=support_mix", "data.path=builtin:tone"], "data.path", "both set", id="path-and-mixture"),
        param(
            ["data=support_mix", "data.mixture=[{path: 'builtin:tone', format: prompt_completion}]"],
            "data.mixture",
            "a mixture of one dataset",
            id="one-part",
        ),
        param(["data=support_mix", "data.mixture.0.weight=0"], "data.mixture[0].weight", "greater than 0", id="weight"),
        param(["data=support_mix", "data.mixture.1.path=builtin:nope"], "data.mixture[1].path", "does not exist",
              id="missing-part-folder"),
        param(["data=support_mix", "data.stopping_strategy=longest"], "data.stopping_strategy", "first_exhausted",
              id="strategy"),
        param(["data.path=null"], "data.path", "data.path is required (or data.mixture", id="no-path-no-mixture"),
    ],
)
def test_mixture_config_errors_name_the_key_path(overrides, path, error, capsys):
    code, plan, err = run_json(capsys, "+goal=tone", *overrides)
    assert (code, plan) == (2, None), err
    assert f"at: {path}" in err
    assert error in err
