"""The shipped sample datasets: current with their generator, right counts, fields and shapes.

Stdlib + pytest only (no torch). Regenerate with `python tests/tools/generate_samples.py`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "conf" / "samples"

LEGAL_LABELS = {"indemnity", "termination", "confidentiality", "liability", "payment",
                "governing_law"}

# dataset: (training count, validation count, training fields, validation fields)
PC = ("prompt", "completion")
EXPECTED = {
    "tone": (400, 50, PC, PC),
    "legal_classification": (400, 60, PC, PC),
    "support_format": (40, 30, PC, PC),
    "product_knowledge": (80, 60, ("id", "title", "text"), PC),
    "safety_alignment": (300, 40, ("prompt", "chosen", "rejected"),
                         ("prompt", "chosen", "rejected")),
    "math_reasoning": (300, 40, ("prompt", "answer"), ("prompt", "answer")),
}


def read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text, f"{path}: want '\\n' line endings"
    return [json.loads(line) for line in text.splitlines()]


def records(dataset: str, split: str) -> list[dict]:
    return read_jsonl(SAMPLES / dataset / split / f"{dataset}.jsonl")


def test_generator_check_passes():
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "tools" / "generate_samples.py"), "--check"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_samples_stay_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 1_500_000


@pytest.mark.parametrize("dataset", sorted(EXPECTED))
def test_counts_fields_and_no_empty_strings(dataset):
    n_train, n_val, train_fields, val_fields = EXPECTED[dataset]
    for split, n, fields in (("training", n_train, train_fields),
                             ("validation", n_val, val_fields)):
        recs = records(dataset, split)
        assert len(recs) == n, f"{dataset}/{split}"
        for i, r in enumerate(recs, 1):
            assert set(r) == set(fields), f"{dataset}/{split} line {i}: {sorted(r)}"
            for key in fields:
                assert isinstance(r[key], str) and r[key].strip(), \
                    f"{dataset}/{split} line {i}: empty {key}"


@pytest.mark.parametrize("dataset", sorted(set(EXPECTED) - {"product_knowledge"}))
def test_validation_prompts_not_in_training(dataset):
    train = {r["prompt"] for r in records(dataset, "training")}
    val = [r["prompt"] for r in records(dataset, "validation")]
    assert len(set(val)) == len(val)
    assert not train & set(val)


def test_tone_replies_follow_the_house_template():
    for split in ("training", "validation"):
        for r in records("tone", split):
            order = re.search(r"\b(\d{5})\b", r["prompt"]).group(1)
            name = r["prompt"].splitlines()[0].removeprefix("From: ")
            assert r["completion"].startswith(f"Dear {name},\n")
            assert r["completion"].startswith("Dear ")
            assert order in r["completion"]
            assert r["completion"].endswith("Kind regards,\nNorthwind Customer Care")


def test_legal_labels_are_valid_and_balanced():
    for split in ("training", "validation"):
        labels = [r["completion"] for r in records("legal_classification", split)]
        assert set(labels) == LEGAL_LABELS
        counts = [labels.count(label) for label in LEGAL_LABELS]
        assert max(counts) - min(counts) <= 1, counts


def test_support_answers_follow_the_format():
    pattern = re.compile(r"Answer: [^\n]+\nSteps: 1\. .+ 2\. .+ 3\. .+")
    for split in ("training", "validation"):
        for r in records("support_format", split):
            assert pattern.fullmatch(r["completion"]), r["completion"]


def test_product_questions_are_answered_by_the_documents():
    docs = records("product_knowledge", "training")
    assert len({d["id"] for d in docs}) == len(docs)
    by_title = {d["title"]: d["text"] for d in docs}
    for q in records("product_knowledge", "validation"):
        titles = [t for t in by_title if t in q["prompt"]]
        assert len(titles) == 1, q["prompt"]
        text, answer = by_title[titles[0]], q["completion"]
        years = re.fullmatch(r"(\d+) years?", answer)
        assert (answer in text) or (years and f"{years.group(1)}-year" in text), (answer, text)


def test_safety_pairs_differ():
    for split in ("training", "validation"):
        for r in records("safety_alignment", split):
            assert r["chosen"] != r["rejected"]


def test_math_answers_are_integers():
    for split in ("training", "validation"):
        for r in records("math_reasoning", split):
            assert re.fullmatch(r"-?\d+", r["answer"]), r["answer"]
            int(r["answer"])
            assert "Answer:" in r["prompt"]


def test_format_samples_hold_their_source_examples():
    """alpaca is tone, legal_csv the first legal clauses, support_messages and support_sharegpt support_format:
    the same examples in the Alpaca, CSV, OpenAI messages and ShareGPT shapes."""
    for split, n in (("training", 120), ("validation", 60)):
        text = (SAMPLES / "legal_csv" / split / "legal_csv.csv").read_text(encoding="utf-8")
        assert "\r" not in text
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        legal = records("legal_classification", split)[:n]
        assert [f"{r['instruction']}\n{r['input']}" for r in rows] == [r["prompt"] for r in legal]
        assert [r["output"] for r in rows] == [r["completion"] for r in legal]
        tone, support = records("tone", split), records("support_format", split)
        alpaca = records("alpaca", split)
        assert [(r["input"], r["output"]) for r in alpaca] == [(r["prompt"], r["completion"]) for r in tone]
        assert {r["instruction"] for r in alpaca} == {"Reply to this customer email in the house tone."}
        for r, chat in zip(support, records("support_messages", split), strict=True):
            assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant"]
            assert [m["content"] for m in chat["messages"][1:]] == [r["prompt"].rstrip("\n"), r["completion"]]
        for r, chat in zip(support, records("support_sharegpt", split), strict=True):
            assert [m["from"] for m in chat["conversations"]] == ["system", "human", "gpt"]
            assert [m["value"] for m in chat["conversations"][1:]] == [r["prompt"].rstrip("\n"), r["completion"]]


def test_general_corpus_and_benchmark():
    corpus = (SAMPLES / "general" / "corpus.txt").read_text(encoding="utf-8")
    lines = corpus.splitlines()
    assert 3000 <= len(lines) <= 6000
    assert all(line.strip() for line in lines)
    bench = read_jsonl(SAMPLES / "general" / "benchmark.jsonl")
    assert 90 <= len(bench) <= 110
    known = set(lines)
    for b in bench:
        assert set(b) == {"question", "choices", "answer"}
        assert isinstance(b["question"], str) and b["question"].strip()
        assert len(b["choices"]) == 4 and len(set(b["choices"])) == 4
        assert all(isinstance(c, str) and c.strip() for c in b["choices"])
        assert isinstance(b["answer"], int) and 0 <= b["answer"] < 4
        # the answer is stated verbatim in the corpus
        assert f"{b['question']} Answer: {b['choices'][b['answer']]}." in known
