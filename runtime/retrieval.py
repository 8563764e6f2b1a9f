"""A small Okapi BM25 retriever (no dependency, no torch): RAG context and few-shot examples.

Documents are split into chunks of about ``chunk_tokens`` words; a query returns the ``k``
best chunks, ties broken by corpus order so retrieval is deterministic.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")


def terms(text: str) -> list[str]:
    """Lower-cased alphanumeric words (item codes like NW-101 become 'nw', '101')."""
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 with the usual k1 = 1.5, b = 0.75 and the non-negative idf (Lucene's)."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75):
        self.texts = list(texts)
        self.k1, self.b = k1, b
        self.docs = [Counter(terms(t)) for t in self.texts]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avgdl = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: str) -> list[float]:
        q = terms(query)
        out = []
        for d, length in zip(self.docs, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.avgdl) if self.avgdl else self.k1
            s = 0.0
            for t in q:
                f = d.get(t, 0)
                if f:
                    s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
            out.append(s)
        return out

    def top(self, query: str, k: int) -> list[int]:
        """Indices of the k best-scoring texts with a positive score, best first."""
        scored = [(s, i) for i, s in enumerate(self.scores(query)) if s > 0]
        scored.sort(key=lambda si: (-si[0], si[1]))
        return [i for _, i in scored[:k]]


def chunk(text: str, chunk_tokens: int) -> list[str]:
    """Consecutive runs of about chunk_tokens words (whitespace words stand in for tokens)."""
    words = text.split()
    if len(words) <= chunk_tokens:
        return [text.strip()] if text.strip() else []
    return [" ".join(words[i : i + chunk_tokens]) for i in range(0, len(words), chunk_tokens)]
