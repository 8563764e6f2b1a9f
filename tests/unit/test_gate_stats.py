"""The forgetting check's statistics (runtime.gate.stats, runtime.gate.verdict): a paired bootstrap over the
benchmark's items, judged on its 95% interval, so a few flipped answers on 100 items cannot decide the verdict and
a drop that the items show beyond doubt still fails. Pure: no torch."""

from __future__ import annotations

import pytest

from runtime.gate import stats
from runtime.gate.report import forgetting_rule, interval_rows
from runtime.gate.verdict import judge
from tests.unit.test_diagnostics import HEALTHY


def _items(n: int, right: int) -> list[int]:
    return [1] * right + [0] * (n - right)


def _flipped(base: list[int], lost: int, gained: int = 0) -> list[int]:
    """`lost` right answers turned wrong, `gained` wrong answers turned right."""
    out = list(base)
    rights = [i for i, v in enumerate(out) if v][:lost]
    wrongs = [i for i, v in enumerate(out) if not v][:gained]
    for i in rights:
        out[i] = 0
    for i in wrongs:
        out[i] = 1
    return out


def _scores(items: list[int], task: float = 0.5, task_items: list[float] | None = None) -> dict:
    return {"plan_id": "p1", "metric": "rouge_l", "task_score": task, "n_examples": 50,
            "general_benchmark": "builtin:general", "general_score": sum(items) / len(items),
            "n_general": len(items), "general_items": items, "task_items": task_items}


def _judge(baseline: dict, tuned: dict) -> dict:
    """The verdict with the task improved (0.3 -> 0.7) unless the scores say otherwise."""
    baseline = {**baseline, "task_score": 0.3} if baseline.get("task_items") is None else baseline
    tuned = {**tuned, "task_score": 0.7} if tuned.get("task_items") is None else tuned
    return judge(plan_id="p1", metric="rouge_l", target=None, declared_baseline=None, threshold=2.0, window=3,
                 baseline=baseline, tuned=tuned, records=HEALTHY)


def _forgetting(result: dict) -> dict:
    return next(c for c in result["checks"] if c["name"] == "forgetting")


def test_paired_bootstrap_is_seeded_and_zero_when_nothing_moved():
    base = _items(100, 60)
    assert stats.paired_bootstrap(base, base) == (0.0, 0.0, 0.0)
    tuned = _flipped(base, 5, 2)
    first = stats.paired_bootstrap(base, tuned)
    assert first == stats.paired_bootstrap(base, tuned)  # same scores, same interval
    point, lo, hi = first
    assert point == pytest.approx(0.03) and lo < 0 < 0.03 < hi
    assert stats.flips(base, tuned) == {"right_to_wrong": 5, "wrong_to_right": 2}
    with pytest.raises(ValueError, match="paired items"):
        stats.paired_bootstrap(base, tuned[:-1])


@pytest.mark.parametrize("lost", [2, 3, 4])
def test_a_few_flipped_items_of_100_do_not_decide_the_verdict(lost):
    base = _items(100, 60)
    result = _judge(_scores(base), _scores(_flipped(base, lost)))
    f = result["forgetting"]
    assert _forgetting(result)["passed"] and result["verdict"] == "pass"
    assert f["method"] == "paired bootstrap" and f["n_items"] == 100 and f["drop_points"] == pytest.approx(lost)
    lo, hi = f["interval_95"]
    assert lo <= 2.0 < hi
    assert f["inconclusive"] == (lost > 2)
    if lost > 2:
        assert "inconclusive, passed" in _forgetting(result)["message"]


@pytest.mark.parametrize(("n", "lost"), [(100, 15), (400, 20), (1000, 40)])
def test_a_drop_the_items_show_beyond_the_threshold_fails(n, lost):
    base = _items(n, n // 2)
    result = _judge(_scores(base), _scores(_flipped(base, lost)))
    f = result["forgetting"]
    assert result["verdict"] == "fail" and not _forgetting(result)["passed"]
    assert f["interval_95"][0] > 2.0, f
    assert "the whole interval is above 2 points" in _forgetting(result)["message"]


def test_two_way_noise_with_no_net_drop_passes():
    base = _items(100, 50)
    result = _judge(_scores(base), _scores(_flipped(base, 12, 12)))
    assert result["verdict"] == "pass" and result["forgetting"]["drop_points"] == 0.0
    assert result["forgetting"]["flips"] == {"right_to_wrong": 12, "wrong_to_right": 12}


def test_without_per_item_results_the_interval_is_unpaired_and_says_so():
    b, t = _scores(_items(100, 60)), _scores(_items(100, 55))
    for s in (b, t):
        s.pop("general_items")
    f = _judge(b, t)["forgetting"]
    assert f["method"] == stats.UNPAIRED and f["n_items"] == 100
    lo, hi = f["interval_95"]
    assert lo < 5.0 < hi and hi - lo > 20  # far wider than the paired interval of the same scores


def test_task_change_gets_a_paired_interval_when_the_score_is_a_mean():
    base, tuned = [0.2, 0.4, 0.3, 0.5] * 5, [0.6, 0.5, 0.7, 0.6] * 5
    result = _judge(_scores(_items(100, 60), sum(base) / 20, base), _scores(_items(100, 60), sum(tuned) / 20, tuned))
    task = result["improvement_interval"]
    assert task["method"] == "paired bootstrap" and task["n_items"] == 20
    assert 0 < task["interval_95"][0] < task["change"] < task["interval_95"][1]
    # macro F1 is not a mean of the per-example scores: no interval, and why
    other = _judge(_scores(_items(100, 60), 0.9, base), _scores(_items(100, 60), 0.1, tuned))
    assert other["improvement_interval"]["interval_95"] is None and "not a mean" in other[
        "improvement_interval"]["note"]


def test_the_report_shows_the_interval_and_the_rule():
    base = _items(100, 60)
    result = _judge(_scores(base), _scores(_flipped(base, 4)))
    rows = {r[0]: r[3] for r in interval_rows(result)}
    assert "paired bootstrap, 100 items, 4 right→wrong, 0 wrong→right" in rows["general drop, 95% interval"]
    rule = forgetting_rule(result)
    assert "whole 95% interval" in rule and "inconclusive" in rule
