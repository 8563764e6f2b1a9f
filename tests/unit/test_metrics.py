"""Task metrics on fixed inputs (no torch)."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from runtime import metrics as m
from runtime.retrieval import BM25, chunk
from schemas.goal import Metric

ROOT = Path(__file__).resolve().parents[2]


def test_registry_keys_match_the_goal_metric_literal():
    assert set(m.METRICS) == set(typing.get_args(Metric))
    assert all(spec.name == key for key, spec in m.METRICS.items())


def test_metrics_gate_and_retrieval_import_no_torch():
    code = ("import sys, runtime.metrics, runtime.gate.stage, runtime.retrieval; "
            "bad = [m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_normalize():
    assert m.normalize("  The Answer:  Blue, and ORANGE! ") == "answer blue and orange"


def test_exact_match_and_accuracy():
    outputs = ["Governing_Law", "termination\nmore words after the label", "payment", ""]
    refs = ["governing_law", "termination", "liability", "x"]
    assert m.exact_match(outputs, refs) == pytest.approx(0.5)
    assert m.accuracy(outputs, refs) == pytest.approx(0.5)
    assert m.METRICS["exact_match"].example("the cat.", "Cat") == 1.0


def test_macro_f1_over_reference_labels():
    refs = ["a", "a", "b", "b"]
    outputs = ["a", "b", "b", "garbage"]
    # a: tp 1, fp 0, fn 1 -> 2/3; b: tp 1, fp 1, fn 1 -> 1/2; 'garbage' adds no class
    assert m.macro_f1(outputs, refs) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m.macro_f1(["x", "y"], ["x", "y"]) == 1.0
    assert m.macro_f1(["y", "x"], ["x", "y"]) == 0.0


def test_rouge_l():
    assert m.lcs_length("a b c d e".split(), "a c e f".split()) == 3
    # tokens: output [cat, sat, on, mat] (articles dropped), reference [cat, is, on, mat]: LCS 3
    assert m.rouge_l_one("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(0.75)
    assert m.rouge_l_one("Dear Ann, thanks", "Dear Ann, thanks") == 1.0
    assert m.rouge_l_one("", "something") == 0.0
    assert m.rouge_l_one("", "") == 1.0
    # P = 2/2, R = 2/4 -> F1 = 2/3
    assert m.rouge_l(["one two", "x"], ["one two three four", "y"]) == pytest.approx((2 / 3 + 0) / 2)


def test_pass_at_1_parses_the_answer():
    assert m.parse_number("3 packs a day for 5 days is 15. Answer: 15") == 15
    assert m.parse_number("Answer: 1,250 dollars") == 1250
    assert m.parse_number("first 3 then 7") == 7
    assert m.parse_number("answer: -4.5") == -4.5
    assert m.parse_number("no digits") is None
    outputs = ["5 x 3 = 15. Answer: 15", "Answer: 16 (I think 15)", "it is 36", "none"]
    refs = ["15", "15", "36", "4"]
    assert m.pass_at_1(outputs, refs) == pytest.approx(0.5)


def test_preference_accuracy():
    assert m.preference_accuracy([-1.0, -5.0, -2.0, -3.0], [-2.0, -1.0, -2.0, -9.0]) == pytest.approx(0.5)
    assert m.METRICS["preference_accuracy"].pairs == "logprob"


def test_answer_recall_on_word_boundaries():
    outputs = ["It is made of Aluminium.", "It costs 155 dollars", "It costs 15 dollars", "blue, and orange"]
    refs = ["aluminium", "155 dollars", "5 dollars", "blue and orange"]
    assert m.answer_recall(outputs, refs) == pytest.approx(0.75)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 outputs against 1 references"):
        m.rouge_l(["a", "b"], ["a"])


def test_unknown_metric_lists_known_ones():
    with pytest.raises(KeyError, match="rouge_l"):
        m.get("bleu")


def test_bm25_ranks_the_matching_document_first():
    docs = ["The Summit Tent costs 295 dollars and comes in blue.",
            "The Cedar Headlamp is made of aluminium.",
            "The Harbor Lantern is made of stainless steel."]
    index = BM25(docs)
    assert index.top("What is the Cedar Headlamp made of?", 2)[0] == 1
    assert index.top("Harbor Lantern material", 1) == [2]
    assert index.top("zebra", 3) == []
    assert chunk("a b c d e", 2) == ["a b", "c d", "e"]
    assert chunk("short text", 256) == ["short text"]


def test_choice_accuracy_picks_the_highest_score_per_item():
    from runtime.metrics import choice_accuracy

    items = [{"choices": ["a", "b", "c"], "answer": 2}, {"choices": ["x", "y"], "answer": 0},
             {"choices": ["p", "q"], "answer": 1}]
    assert choice_accuracy(items, [-3.0, -2.0, -1.0, -0.5, -0.7, -0.1, -0.9]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="6 scores for 7 choices"):
        choice_accuracy(items, [0.0] * 6)
