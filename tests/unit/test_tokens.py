"""A local model's own tokenizer counts the data's tokens (planner.tokens): the sequence length and the widest micro
batch, and through it every batch-scaled memory term, follow what the trainers will see, not chars/4.

The tokenizer written here is a word-level one (every word or run of punctuation one token, unknown words [UNK]),
so the expected counts are computed independently with a regular expression."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tests.unit.helpers import make_plan
from tests.unit.test_local_model import LLAMA_1B, write_model

tokenizers = pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[2]
TONE = ROOT / "conf" / "samples" / "tone" / "training" / "tone.jsonl"
WORDS = re.compile(r"\w+|[^\w\s]+")  # tokenizers' Whitespace pre-tokenizer


def word_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({"[UNK]": 0, "Dear": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(path))


def tone_records() -> list[dict]:
    return [json.loads(line) for line in TONE.read_text(encoding="utf-8").splitlines() if line.strip()]


def train_stage(plan):
    return next(s for s in plan.stages if s.name == "train")


def plan_with(folder: Path):
    return make_plan("+goal=tone", "model=local", f"model.path={folder}", "inventory=h200-1", "method=lora")


def test_a_local_tokenizer_counts_the_records(tmp_path):
    folder = write_model(tmp_path / "m1b", LLAMA_1B)
    word_tokenizer(folder / "tokenizer.json")
    plan = plan_with(folder)
    words = [len(WORDS.findall(r["prompt"])) + len(WORDS.findall(r["completion"])) for r in tone_records()]
    chars = [math.ceil((len(r["prompt"]) + len(r["completion"])) / 4) for r in tone_records()]
    assert max(words) != max(chars)  # the two counts differ on this data: the test can tell them apart
    stats = plan.data_stats
    assert stats.token_estimate == "tokenizer"
    assert stats.training.tokens_max == max(words)
    assert stats.training.tokens_total == sum(words)
    estimate = train_stage(plan).estimate
    assert estimate is not None
    assumptions = " | ".join(estimate.assumptions)
    assert f"counted with the model's tokenizer, {(folder / 'tokenizer.json').resolve()}" in assumptions
    assert "chars/4" not in assumptions


def test_without_a_tokenizer_file_it_is_chars_and_says_why(tmp_path):
    folder = write_model(tmp_path / "m1b", LLAMA_1B)
    plan = plan_with(folder)
    chars = [math.ceil((len(r["prompt"]) + len(r["completion"])) / 4) for r in tone_records()]
    assert plan.data_stats.token_estimate == "chars/4"
    assert plan.data_stats.training.tokens_max == max(chars)
    estimate = train_stage(plan).estimate
    assert estimate is not None
    assert f"token lengths estimated as chars/4: no tokenizer.json in {folder}" in estimate.assumptions


def test_an_unreadable_tokenizer_falls_back_to_chars_with_the_reason(tmp_path):
    folder = write_model(tmp_path / "m1b", LLAMA_1B)
    (folder / "tokenizer.json").write_text("{not json")
    plan = plan_with(folder)
    assert plan.data_stats.token_estimate == "chars/4"
    estimate = train_stage(plan).estimate
    assert estimate is not None
    assert any("tokenizer.json is unreadable" in a for a in estimate.assumptions)


def test_the_tokenizer_sets_the_priced_width(tmp_path):
    """Two copies of one model, one with a tokenizer that makes fewer tokens of this data than chars/4: the widest
    micro batch and the activation memory priced for it shrink with the count, nothing else changes."""
    with_tok = write_model(tmp_path / "a", LLAMA_1B)
    word_tokenizer(with_tok / "tokenizer.json")
    without = write_model(tmp_path / "b", LLAMA_1B)
    counted, guessed = plan_with(with_tok), plan_with(without)
    a, b = train_stage(counted).estimate, train_stage(guessed).estimate
    assert a is not None and b is not None
    assert counted.data_stats.training.tokens_max < guessed.data_stats.training.tokens_max
    # the plain template "{prompt} {completion}" adds one space: no word (0 tokens) counted, ceil(1/4) guessed;
    # and BOS and EOS on both
    assert train_stage(counted).prompt.template == "{prompt} {completion}"
    assert a.widest_batch_tokens == counted.data_stats.training.tokens_max + 0 + 2
    assert b.widest_batch_tokens == guessed.data_stats.training.tokens_max + 1 + 2
    ma, mb = a.memory_per_gpu_bytes, b.memory_per_gpu_bytes
    assert ma.activations < mb.activations and ma.weights == mb.weights and ma.adapters == mb.adapters


def test_a_changed_tokenizer_is_another_plan(tmp_path):
    """The tokenizer sets the counts, so its file is part of the plan id: replaced by one that splits on whitespace
    only (punctuation stays on its word), the same folder plans with its counts under another id."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    folder = write_model(tmp_path / "m1b", LLAMA_1B)
    word_tokenizer(folder / "tokenizer.json")
    first = plan_with(folder)
    tok = Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))
    second = plan_with(folder)
    spaced = [len(r["prompt"].split()) + len(r["completion"].split()) for r in tone_records()]
    assert second.data_stats.training.tokens_max == max(spaced) < first.data_stats.training.tokens_max
    assert second.data_stats.tokenizer != first.data_stats.tokenizer and second.id != first.id
    assert plan_with(folder).id == second.id  # the same file: the same plan


def test_chat_turns_and_replay_documents_are_counted_with_the_tokenizer(tmp_path):
    from planner import resolve
    from planner.compose import load
    from planner.probe import probe
    from planner.tokens import token_counter

    folder = write_model(tmp_path / "m1b", LLAMA_1B)
    word_tokenizer(folder / "tokenizer.json")
    chats = [
        {"messages": [{"role": "user", "content": f"Where is order {i}?"}, {"role": "assistant", "content": "Sorry!"}]}
        for i in range(30)
    ]
    (tmp_path / "chat" / "training").mkdir(parents=True)
    (tmp_path / "chat" / "training" / "c.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    data = [f"data.path={tmp_path / 'chat'}", "data.format=messages"]
    spec, _ = load(["+goal=tone", "model=local", f"model.path={folder}", *data])
    counter = token_counter(spec)
    stats = probe(spec.data, tmp_path, counter)
    # "Where is order 12 ?" + "Sorry !": 5 + 2 words and punctuation runs
    assert (stats.token_estimate, stats.training.tokens_max, stats.training.tokens_total) == ("tokenizer", 7, 7 * 30)
    docs = tmp_path / "replay.jsonl"
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in ("one two three.", "four, five")))
    # 4 and 3 tokens, a mean of 3.5, + BOS and EOS
    assert resolve.replay_tokens(str(docs), counter) == 3.5 + 2
