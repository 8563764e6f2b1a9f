"""Data formats and file types: Alpaca and ShareGPT records (converted to the trainers' shape in one place,
schemas.records.to_shape), JSON lines, CSV and Parquet files, bad records located as file:line (file:row for
Parquet), remote data without declared counts, and the shipped samples of each format planning with their counts.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pytest import param

from planner.errors import ConfigError
from planner.probe import probe
from schemas.data import Data
from schemas.records import records_of, shape, to_shape
from schemas.scan import SplitScan
from tests.unit.helpers import run_json

ALPACA = {"instruction": "Reply kindly.", "input": "My order 10001 is late.", "output": "Dear customer, sorry."}
HUMAN, GPT = {"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello, how can I help?"}


def _lines(records: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def _scan(fmt: str, name: str, blob: bytes):
    scan = SplitScan(fmt, 4.0)
    scan.add(name, blob)
    return scan.stats()


# ----------------------------------------------------------------------------- the one conversion


def test_alpaca_becomes_prompt_completion_with_the_input_after_a_blank_line():
    assert shape("alpaca") == "prompt_completion"
    assert to_shape(ALPACA, "alpaca") == {
        "prompt": "Reply kindly.\n\nMy order 10001 is late.",
        "completion": "Dear customer, sorry.",
    }
    for no_input in ({**ALPACA, "input": ""}, {**ALPACA, "input": None}, {"instruction": "Hi.", "output": "Hello."}):
        assert to_shape(no_input, "alpaca")["prompt"] == no_input["instruction"]


def test_sharegpt_becomes_messages_with_openai_roles():
    assert shape("sharegpt") == "messages"
    record = {"conversations": [{"from": "system", "value": "Be brief."}, HUMAN, GPT]}
    assert to_shape(record, "sharegpt") == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello, how can I help?"},
        ]
    }


def test_a_record_with_an_error_is_not_converted_so_the_trainers_skip_and_count_it():
    bad = {"conversations": [HUMAN, {"from": "bot", "value": "hi"}]}
    assert to_shape(bad, "sharegpt") is bad
    assert to_shape({"instruction": "x"}, "alpaca") == {"instruction": "x"}


# ----------------------------------------------------------------------------- bad records, located

ERRORS = [
    param("alpaca", {"instruction": "x"}, "missing field output", id="alpaca-no-output"),
    param("alpaca", {**ALPACA, "input": 3}, "`input` is a number, expected a string", id="alpaca-input-number"),
    param("alpaca", {**ALPACA, "output": ["a"]}, "`output` is a list, expected a string", id="alpaca-output-list"),
    param("sharegpt", {"conversations": "hi"}, "`conversations` is a string, expected a list of {from, value}", id="sharegpt-string"),
    param("sharegpt", {"conversations": [{"role": "user", "content": "hi"}, GPT]}, "`conversations` turn 1 has no `from`", id="sharegpt-openai-keys"),
    param("sharegpt", {"conversations": [HUMAN, {"from": "bot", "value": "x"}]}, "turn 2 `from` is 'bot', expected one of assistant, gpt, human, system, user", id="sharegpt-unknown-role"),
    param("sharegpt", {"conversations": [HUMAN]}, "`conversations` has no gpt turn", id="sharegpt-no-gpt"),
    param("sharegpt", {"conversations": [HUMAN, GPT, HUMAN]}, "ends with a human turn; the last turn must be the gpt's reply", id="sharegpt-ends-human"),
]


@pytest.mark.parametrize("fmt, record, reason", ERRORS)
def test_a_bad_record_is_an_invalid_line_with_file_and_line(fmt, record, reason):
    good = ALPACA if fmt == "alpaca" else {"conversations": [HUMAN, GPT]}
    s = _scan(fmt, "training/t.jsonl", _lines([good, record]))
    assert (s.records, s.invalid_total) == (1, 1)
    assert str(s.invalid[0]).startswith("training/t.jsonl:2: ")
    assert reason in s.invalid[0].reason


def test_empty_text_names_the_field_as_the_file_writes_it():
    s = _scan("alpaca", "training/t.jsonl", _lines([{**ALPACA, "output": " "}]))
    assert str(s.empty_at[0]) == "training/t.jsonl:1: `output` is empty"
    chat = {"conversations": [{"from": "human", "value": ""}, GPT]}
    s = _scan("sharegpt", "training/t.jsonl", _lines([chat]))
    assert str(s.empty_at[0]) == "training/t.jsonl:1: `conversations` turn 1 (human) has empty content"


def test_alpaca_records_differing_only_in_their_input_are_not_duplicates():
    s = _scan("alpaca", "training/t.jsonl", _lines([ALPACA, {**ALPACA, "input": "Order 10002 is late."}, ALPACA]))
    assert (s.records, s.usable, s.unique, s.duplicates) == (3, 3, 2, 1)
    assert str(s.duplicate_at[0]) == "training/t.jsonl:3: duplicate of training/t.jsonl:1"


# ----------------------------------------------------------------------------- CSV and Parquet

CSV = (
    b"\xef\xbb\xbfinstruction,input,output\n"  # a spreadsheet's byte-order mark
    b'"Reply, kindly","line one\nline two",Dear customer.\n'  # a quoted cell over two lines: row at line 2
    b",x,y\n"  # line 4: empty instruction
    b"\n"
    b"Say hi,Bob\n"  # line 6: a short row
)


def test_csv_rows_are_located_by_the_line_they_start_on():
    s = _scan("alpaca", "training/a.csv", CSV)
    assert (s.records, s.usable) == (2, 1)
    assert [str(b) for b in s.invalid] == ["training/a.csv:6: missing field output"]
    assert [str(b) for b in s.empty_at] == ["training/a.csv:4: `instruction` is empty"]
    assert records_of("training/a.csv", CSV, "alpaca")[0] == {
        "prompt": "Reply, kindly\n\nline one\nline two",
        "completion": "Dear customer.",
    }


def _parquet(rows: dict) -> bytes:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.table(rows), buf)
    return buf.getvalue()


def test_parquet_rows_are_located_by_row_number_and_chats_keep_their_structure():
    blob = _parquet({"instruction": ["a", None, "c"], "input": ["", "x", None], "output": ["1", "2", "3"]})
    s = _scan("alpaca", "training/a.parquet", blob)
    assert (s.records, [str(b) for b in s.invalid]) == (2, ["training/a.parquet:2: `instruction` is null, expected a string"])
    chats = _parquet({"conversations": [[HUMAN, GPT], [HUMAN]]})
    s = _scan("sharegpt", "training/c.parquet", chats)
    assert (s.records, [str(b) for b in s.invalid]) == (1, ["training/c.parquet:2: `conversations` has no gpt turn"])
    assert records_of("training/c.parquet", chats, "sharegpt")[0]["messages"][1]["role"] == "assistant"


def test_a_corrupt_parquet_file_is_a_config_error_naming_it(tmp_path):
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "a.parquet").write_bytes(b"PAR1 not really")
    data = Data(name="x", path=str(tmp_path), format="alpaca")
    with pytest.raises(ConfigError, match=r"training/a\.parquet: not a readable Parquet file"):
        probe(data, tmp_path)


def test_jsonl_csv_and_parquet_files_of_a_split_are_read_together(tmp_path):
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "a.jsonl").write_bytes(_lines([ALPACA]))
    (tmp_path / "training" / "b.csv").write_bytes(CSV)
    (tmp_path / "training" / "c.parquet").write_bytes(_parquet({"instruction": ["p"], "output": ["q"]}))
    (tmp_path / "training" / "notes.txt").write_text("not data")
    stats = probe(Data(name="x", path=str(tmp_path), format="alpaca"), tmp_path)
    assert stats.training.files == ("training/a.jsonl", "training/b.csv", "training/c.parquet")
    assert (stats.training.records, stats.training.usable) == (4, 3)


def test_planning_jsonl_and_csv_data_does_not_import_pyarrow():
    code = (
        "import sys; from pathlib import Path; from planner.compose import load; from planner.probe import probe\n"
        "for d in ('alpaca', 'legal_csv', 'support_sharegpt'):\n"
        "    spec, _ = load(['+goal=tone', f'data={d}']); probe(spec.data, Path.cwd())\n"
        "assert not {'pyarrow', 'datasets', 'torch'} & set(sys.modules), sorted(sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)


# ----------------------------------------------------------------------------- through the CLI


def test_acceptance_400_alpaca_records_plan_lora(tmp_path, capsys):
    for split, n in (("training", 400), ("validation", 40)):
        (tmp_path / split).mkdir()
        records = [
            {"instruction": "Write a polite reply.", "input": f"Order {10000 + i} is late ({split}).", "output": f"Sorry, {i}."}
            for i in range(n)
        ]
        (tmp_path / split / "a.jsonl").write_bytes(_lines(records))
    code, plan, err = run_json(capsys, "+goal=tone", "method=lora", f"data.path={tmp_path}", "data.format=alpaca")
    assert code in (0, 1), err
    assert plan["data_stats"]["training"]["records"] == 400
    assert plan["data_stats"]["validation"]["records"] == 40
    train = next(s for s in plan["stages"] if s["name"] == "train")
    assert train["data"]["format"] == "alpaca"


# dataset config: (format, training records, validation records)
SAMPLES = {
    "alpaca": ("alpaca", 400, 50),
    "legal_csv": ("alpaca", 120, 60),
    "support_messages": ("messages", 40, 30),
    "support_sharegpt": ("sharegpt", 40, 30),
}


@pytest.mark.parametrize("dataset", sorted(SAMPLES))
def test_each_format_sample_plans_with_its_counts_and_no_bad_lines(dataset, capsys):
    fmt, n_train, n_val = SAMPLES[dataset]
    code, plan, err = run_json(capsys, "+goal=tone", f"data={dataset}")
    assert code in (0, 1), err
    stats = plan["data_stats"]
    assert plan["spec"]["data"]["format"] == fmt
    assert plan["decision"]["method"] == "lora"
    for split, n in (("training", n_train), ("validation", n_val)):
        assert (stats[split]["records"], stats[split]["unique"], stats[split]["invalid_total"]) == (n, n, 0)


def test_remote_hf_data_plans_from_declared_counts_and_says_they_are_not_measured(capsys):
    args = ("+goal=tone", "method=lora", "data.path=hf://acme/emails@v2", "data.format=alpaca")
    code, plan, err = run_json(capsys, *args, "+data.declared.training=800", "+data.declared.validation=80")
    assert code in (0, 1), err
    stats = plan["data_stats"]
    assert (stats["source"], stats["counts"]) == ("hub", "declared")
    assert (stats["training"]["records"], stats["validation"]["records"]) == (800, 80)
    counts = next(f for f in plan["findings"] if f["code"] == "data-counts")
    assert counts["path"] == "data.declared" and "counts declared, not measured (800 training, 80 validation" in (
        counts["message"]
    )
    # the runtime loads it from the Hub (or the datasets cache) at the pinned revision, the rows unchecked
    hub = next(s for s in plan["stages"] if s["name"] == "train")["data"]["hub"]
    assert hub == {
        "repo": "acme/emails",
        "revision": "v2",
        "subset": None,
        "training_split": "train",
        "validation_split": "validation",
        "training_rows": None,
    }


def test_remote_hf_data_without_counts_offline_says_how_to_declare_or_fill_the_cache(capsys):
    pytest.importorskip("datasets")
    code, plan, err = run_json(capsys, "+goal=tone", "data.path=hf://acme/emails", "data.format=sharegpt")
    assert (code, plan) == (2, None)
    assert "cannot read hf://acme/emails: it is not in the local datasets cache and the Hub cannot be reached" in err
    assert "at: data.path" in err
    assert "+data.declared.training=<records>" in err
    assert "datasets.load_dataset('acme/emails')" in err


@pytest.mark.parametrize(
    ("path", "error"),
    [
        param("hf://acme/two words", "is not a Hugging Face dataset id", id="space"),
        param("hf://acme/emails@", "the revision after @", id="empty-revision"),
        param("hf://a/b/c", "is not a Hugging Face dataset id", id="three-parts"),
    ],
)
def test_a_malformed_hub_id_is_refused_at_data_path(path, error, capsys):
    code, plan, err = run_json(capsys, "+goal=tone", f"data.path={path}", "+data.declared.training=10")
    assert (code, plan) == (2, None)
    assert "at: data.path" in err and error in err
