"""How the planner counts a record's tokens: with the model's own tokenizer when its files are on this machine, else
chars / knowledge.estimator.chars_per_token.

Token counts set the sequence length and the widest micro batch, and the widest batch sets every batch-scaled
memory term (docs/estimator.md, 2.7c). Characters per token differ by tokenizer and by text (4 is an English
average; the tokenizer of the memory measurements makes 4.6 on the tone data), so a model whose tokenizer.json is
in a local model.path (model=local) is counted with that tokenizer: the counts the trainers will see, less only
the special tokens and the prompt format, which the planner adds (planner.resolve). The `tokenizers` package
(the runtime extra) reads the file; without it, or without the file, the count falls back to chars.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.records import CHATS, record_chars
from schemas.spec import Spec

TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of records' fields (schemas.records.record_chars's texts) or of one text."""

    chars_per_token: float
    tokenizer: str | None = None  # the tokenizer.json counted with; None: characters / chars_per_token
    digest: str | None = None  # sha256 of that file (16 hex): part of the plan id, since it sets the counts
    note: str = ""  # why a model with a local folder is not counted with its tokenizer

    @property
    def kind(self) -> str:
        """DataStats.token_estimate of data counted with this counter."""
        return "tokenizer" if self.tokenizer else "chars/4"

    def describe(self) -> str:
        """How a length was counted, for the plan's assumptions."""
        return "the model's tokenizer" if self.tokenizer else f"chars/{self.chars_per_token:g}"

    def source(self) -> str:
        """Which tokenizer counted, or why a local model's was not used."""
        if self.tokenizer:
            return f"token lengths counted with the model's tokenizer, {self.tokenizer} (sha256 {self.digest})"
        return f"token lengths estimated as chars/{self.chars_per_token:g}: {self.note}"

    def text(self, text: str) -> int:
        return self.texts([text])[0]

    def texts(self, texts: list[str]) -> list[int]:
        """Tokens of each text (no special tokens), one batch through the tokenizer."""
        if not self.tokenizer:
            return [math.ceil(len(t) / self.chars_per_token) for t in texts]
        encoded = _encoder(self.tokenizer).encode_batch(texts, add_special_tokens=False) if texts else []
        return [len(e.ids) for e in encoded]

    def __call__(self, records: list[list[tuple[str, Any]]]) -> list[int]:
        """Tokens of the longest sequence each well-typed record becomes (record_chars's texts, counted): one batch
        through the tokenizer, which encodes it in parallel."""
        if not self.tokenizer:
            return [math.ceil(record_chars(fields) / self.chars_per_token) for fields in records]
        texts: list[str] = []
        spans: list[list[tuple[int, int]]] = []  # per record, per field: its texts' slice of `texts`
        for fields in records:
            spans.append([])
            for name, value in fields:
                if name == "label":
                    continue
                # a chat: each turn's content (the template's tokens per turn are the prompt format's)
                parts = [value] if isinstance(value, str) else [m[CHATS[name][1]] for m in value]
                spans[-1].append((len(texts), len(texts) + len(parts)))
                texts.extend(parts)
        sizes = self.texts(texts)
        counts = []
        for record in spans:
            per_field = [sum(sizes[a:b]) for a, b in record]
            counts.append(per_field[0] + max(per_field[1:]) if len(per_field) > 1 else per_field[0])
        return counts


def token_counter(spec: Spec) -> TokenCounter:
    """The counter for this spec's model: its tokenizer when model.path is a local folder holding tokenizer.json and
    the tokenizers package can read it, else chars / chars_per_token (with a note saying why, for a local folder).
    The file is read again whenever it changes (its size and modification time key the cache)."""
    cpt = spec.knowledge.estimator.chars_per_token
    folder = Path(spec.model.hf_id).expanduser()
    if spec.model.builder is not None or not folder.is_dir():
        return TokenCounter(cpt)
    file = folder / TOKENIZER_FILE
    try:
        st = file.stat()
    except OSError:
        return TokenCounter(cpt, note=f"no {TOKENIZER_FILE} in {folder}")
    path = str(file.resolve())
    try:
        digest = _read(path, st.st_mtime_ns, st.st_size)[1]
    except ImportError:
        return TokenCounter(cpt, note="the tokenizers package is not installed (pip install 'ladder-planner[runtime]')")
    except Exception as exc:  # a file the tokenizers library cannot read: count by characters, and say so
        return TokenCounter(cpt, note=f"{file} is unreadable ({type(exc).__name__}: {exc})")
    return TokenCounter(cpt, tokenizer=path, digest=digest)


def _encoder(path: str) -> Any:
    st = Path(path).stat()
    return _read(path, st.st_mtime_ns, st.st_size)[0]


@functools.lru_cache(maxsize=4)
def _read(path: str, mtime_ns: int, size: int) -> tuple[Any, str]:
    """The tokenizer in `path` and the sha256 of the file (16 hex), read once per version of the file."""
    from tokenizers import Tokenizer

    blob = Path(path).read_bytes()
    return Tokenizer.from_str(blob.decode("utf-8")), hashlib.sha256(blob).hexdigest()[:16]
