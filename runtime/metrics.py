"""Task metrics the gate compares, baseline against tuned. Pure functions: no torch, no I/O.

Each metric has a per-example score (shown next to the example in the report) and a corpus
score (what the gate compares). ``METRICS`` is keyed by ``schemas.goal.Metric``'s values.

Text is normalised before it is compared: lower case, punctuation and the articles a/an/the
dropped, whitespace collapsed (the SQuAD rule). Label-like metrics (exact_match, accuracy,
macro_f1) read as many leading non-empty lines of the output as the reference has, so a
classifier that keeps talking after its label is judged on the label. preference_accuracy
takes log-probabilities, not texts: the evaluation compares the mean log-prob per token of the
chosen and the rejected completion.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    text = _PUNCT.sub(" ", text.lower())
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def first_lines(output: str, reference: str) -> str:
    """The output's leading non-empty lines, as many as the reference has (at least one)."""
    n = max(1, sum(1 for line in reference.splitlines() if line.strip()))
    return "\n".join([line for line in output.splitlines() if line.strip()][:n])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _pairs(a: Sequence, b: Sequence) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} outputs against {len(b)} references")


# ----------------------------------------------------------------------------- per example


def exact_match_one(output: str, reference: str) -> float:
    return float(normalize(first_lines(output, reference)) == normalize(reference))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (O(len(a) * len(b)) time, O(len(b)) memory)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l_one(output: str, reference: str) -> float:
    """ROUGE-L F1 on normalised tokens: LCS / len(output) and LCS / len(reference)."""
    out, ref = tokens(output), tokens(reference)
    if not out and not ref:
        return 1.0
    lcs = lcs_length(out, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(out), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def parse_number(text: str) -> float | None:
    """The number after the last 'Answer:' if there is one, else the last number in the text."""
    idx = text.lower().rfind("answer:")
    if idx >= 0:
        found = _NUMBER.search(text, idx + len("answer:"))
        if found:
            return _to_float(found.group())
    every = _NUMBER.findall(text)
    return _to_float(every[-1]) if every else None


def _to_float(token: str) -> float | None:
    try:
        return float(token.replace(",", ""))
    except ValueError:
        return None


def pass_at_1_one(output: str, reference: str) -> float:
    got, want = parse_number(output), parse_number(reference)
    if got is None or want is None:
        return 0.0
    return float(math.isclose(got, want, rel_tol=0.0, abs_tol=1e-6))


def answer_recall_one(output: str, reference: str) -> float:
    """1 when the normalised reference appears in the normalised output on word boundaries."""
    ref = normalize(reference)
    if not ref:
        return 0.0
    return float(f" {ref} " in f" {normalize(output)} ")


def preference_one(chosen_logp: float, rejected_logp: float) -> float:
    return float(chosen_logp > rejected_logp)


# ----------------------------------------------------------------------------- corpus


def exact_match(outputs: Sequence[str], references: Sequence[str]) -> float:
    _pairs(outputs, references)
    return _mean([exact_match_one(o, r) for o, r in zip(outputs, references, strict=True)])


def accuracy(outputs: Sequence[str], references: Sequence[str]) -> float:
    """Exact match of normalised answers (the classification reading of it)."""
    return exact_match(outputs, references)


def macro_f1(outputs: Sequence[str], references: Sequence[str]) -> float:
    """F1 per label, averaged over the labels that occur in the references.

    A prediction outside the label set is wrong for its reference's label (a false negative)
    and adds no class of its own, so free text cannot inflate or dilute the average.
    """
    _pairs(outputs, references)
    gold = [normalize(r) for r in references]
    pred = [normalize(first_lines(o, r)) for o, r in zip(outputs, references, strict=True)]
    labels = sorted(set(gold))
    scores = []
    for label in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return _mean(scores)


def _average(one: Callable, left: Sequence, right: Sequence) -> float:
    """The mean of the per-example score over equal-length pairs."""
    _pairs(left, right)
    return _mean([one(a, b) for a, b in zip(left, right, strict=True)])


def rouge_l(outputs: Sequence[str], references: Sequence[str]) -> float:
    return _average(rouge_l_one, outputs, references)


def pass_at_1(outputs: Sequence[str], references: Sequence[str]) -> float:
    """Greedy single sample: the fraction whose parsed number equals the reference's."""
    return _average(pass_at_1_one, outputs, references)


def preference_accuracy(chosen_logps: Sequence[float], rejected_logps: Sequence[float]) -> float:
    """Fraction of pairs where the model gives the chosen completion the higher log-prob."""
    return _average(preference_one, chosen_logps, rejected_logps)


def answer_recall(outputs: Sequence[str], references: Sequence[str]) -> float:
    return _average(answer_recall_one, outputs, references)


def choice_correct(items: Sequence[dict], scores: Sequence[float]) -> list[int]:
    """Multiple choice, item by item: 1 where the highest-scored choice is item["answer"], else 0; `scores` holds
    one score per choice, item after item."""
    if len(scores) != sum(len(item["choices"]) for item in items):
        raise ValueError(f"{len(scores)} scores for {sum(len(i['choices']) for i in items)} choices")
    correct, offset = [], 0
    for item in items:
        n = len(item["choices"])
        chunk = scores[offset : offset + n]
        offset += n
        correct.append(int(max(range(n), key=chunk.__getitem__) == item["answer"]))
    return correct


def choice_accuracy(items: Sequence[dict], scores: Sequence[float]) -> float:
    """Multiple choice: the fraction of items whose highest-scored choice is item["answer"]."""
    correct = choice_correct(items, scores)
    return sum(correct) / len(correct)


@dataclass(frozen=True)
class Metric:
    """A task metric: the corpus score and the per-example score; `pairs` says what it takes."""

    name: str
    corpus: Callable[[Sequence, Sequence], float]
    example: Callable
    pairs: str = "text"  # "text": (outputs, references); "logprob": (chosen, rejected)

    def __call__(self, a: Sequence, b: Sequence) -> float:
        return self.corpus(a, b)


METRICS: dict[str, Metric] = {
    "exact_match": Metric("exact_match", exact_match, exact_match_one),
    "accuracy": Metric("accuracy", accuracy, exact_match_one),
    "macro_f1": Metric("macro_f1", macro_f1, exact_match_one),
    "rouge_l": Metric("rouge_l", rouge_l, rouge_l_one),
    "pass_at_1": Metric("pass_at_1", pass_at_1, pass_at_1_one),
    "preference_accuracy": Metric("preference_accuracy", preference_accuracy, preference_one, pairs="logprob"),
    "answer_recall": Metric("answer_recall", answer_recall, answer_recall_one),
}


def get(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}") from None
