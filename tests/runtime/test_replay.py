"""Replay (method.replay): the documents, the collator around TRL's real SFT collator, and a train stage with it."""

from __future__ import annotations

import json

import pytest

from runtime import replay
from runtime.context import StageFailed
from schemas.method import Lora, Replay
from tests.runtime.helpers import read_json as _json
from tests.runtime.helpers import run_stage as _run
from tests.runtime.helpers import write_bundle

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def _collator(tokenizer):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)


def _task_examples(tokenizer, n: int = 4) -> list[dict]:
    out = []
    for i in range(n):
        prompt = tokenizer(f"From: customer {i}\nReply:")["input_ids"]
        answer = tokenizer(f" Dear customer {i}, thank you for your order.", add_special_tokens=False)["input_ids"]
        ids = prompt + answer + [tokenizer.eos_token_id]
        out.append({"input_ids": ids, "labels": [-100] * len(prompt) + ids[len(prompt):]})
    return out


def test_builtin_general_documents_are_the_corpus_lines():
    from runtime import tiny

    docs = replay.documents(Replay(data=str(tiny.CORPUS)))  # what the plan resolves builtin:general to
    with pytest.raises(StageFailed, match="not resolved in this plan"):
        replay.documents(Replay(data="builtin:general"))

    assert docs == [line for line in tiny.CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_bad_replay_files_name_the_file_and_line(tmp_path):
    with pytest.raises(StageFailed, match="no file"):
        replay.documents(Replay(data=str(tmp_path / "missing.txt")))
    bad = tmp_path / "general.jsonl"
    bad.write_text('{"text": "one"}\n{"text": 2}\n', encoding="utf-8")
    with pytest.raises(StageFailed, match=rf"{bad}:2: no \"text\" string"):
        replay.documents(Replay(data=str(bad)))
    few = tmp_path / "few.txt"
    few.write_text("a line\nanother line\n", encoding="utf-8")
    with pytest.raises(StageFailed, match="2 document"):
        replay.documents(Replay(data=str(few)))


def test_schema_keeps_replay_to_supervised_stages():
    from pydantic import ValidationError

    from schemas.method import Dpo, Grpo

    assert Lora(replay={"data": "builtin:general", "ratio": 2}).replay.ratio == 2
    for bad in ({"data": "general.txt"}, {"data": "builtin:../x"}, {"data": "/data/general.csv"},
                {"data": "builtin:general", "ratio": 0}):
        with pytest.raises(ValidationError):
            Lora(replay=bad)
    for kind in (Dpo, Grpo):
        with pytest.raises(ValidationError, match="replay mixes text into supervised batches"):
            kind(replay={"data": "builtin:general"})


def test_collator_adds_packed_replay_rows_with_loss_on_every_token(tokenizer):
    from runtime import tiny

    docs = replay.documents(Replay(data=str(tiny.CORPUS)))
    encoded = replay.encode(tokenizer, docs, max_length=256)
    wrapped = replay.ReplayCollator(_collator(tokenizer), encoded, ratio=3, seed=42)
    examples = _task_examples(tokenizer)
    width = max(len(e["input_ids"]) for e in examples)

    rows = wrapped.rows(examples)
    drawn = wrapped.draw(examples)
    assert len(drawn) == 12  # 3 per task example
    assert sum(len(r["input_ids"]) for r in rows) == sum(len(encoded[i][:width]) for i in drawn)
    assert all(len(r["input_ids"]) <= width for r in rows)
    assert len(rows) < len(drawn)  # short lines share rows
    assert [t for r in rows for t in r["input_ids"]] == [t for i in drawn for t in encoded[i][:width]]

    batch = wrapped(examples)
    assert batch["input_ids"].shape[0] == len(examples) + len(rows)
    assert batch["input_ids"].shape[1] == width  # replay adds rows, not padding
    task_labels = batch["labels"][: len(examples)]
    assert (task_labels == -100).any()  # prompts stay masked
    replay_labels = batch["labels"][len(examples):]
    replay_mask = batch["attention_mask"][len(examples):].bool()
    assert (replay_labels[replay_mask] != -100).all()  # every replay token is trained on

    assert wrapped.draw(examples) == drawn  # the same batch draws the same documents (resume replays them)
    assert wrapped.draw(examples[:3]) != drawn[:9]
    assert replay.ReplayCollator(_collator(tokenizer), encoded, ratio=3, seed=7).draw(examples) != drawn


def test_train_stage_mixes_replay_and_says_so(tmp_path, tiny_dir, capsys):
    bundle = write_bundle(tmp_path, "+goal=tone", "method=lora", "method.max_steps=4", "method.val_check_interval=0.1",
                     'method.replay={data: "builtin:general", ratio: 2}')
    plan = json.loads((bundle / "plan.json").read_text())
    assert plan["spec"]["method"]["replay"] == {"data": "builtin:general", "ratio": 2.0}
    assert any("replay 2x" in a for a in plan["estimate"]["assumptions"])
    assert _run(bundle, "train") == 0
    out = capsys.readouterr().out
    from runtime import tiny

    assert f"replay 2x from {tiny.CORPUS} (3,745 documents, 16 per micro batch)" in out
    status = _json(bundle / "run/train/status.json")
    assert status["state"] == "completed" and status["steps_completed"] == 4
    assert (bundle / "run/train/adapter/adapter_model.safetensors").is_file()
