"""Data that counts: the floors count usable, unique examples; empties, duplicates, near duplicates and records of
the wrong type are reported with file:line; data.path that is empty or a file gets a specific error.

The scan (schemas.scan.SplitScan) is tested on bytes; the findings through the CLI on datasets written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest import param

from planner.compose import load
from planner.errors import ConfigError
from planner.probe import probe
from schemas.data import SplitStats
from schemas.scan import SplitScan
from tests.unit.helpers import run_json


def _pc(i: int) -> dict:
    return {"prompt": f"Where is my order {1000 + i}?\n", "completion": f"Dear customer, order {1000 + i} ships today."}


def _lines(records: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def _scan(fmt: str, records: list, name: str = "training/t.jsonl") -> SplitStats:
    scan = SplitScan(fmt, 4.0)
    scan.add(name, _lines(records))
    return scan.stats()


def _dataset(root: Path, training: list, validation: list | None = None) -> Path:
    (root / "training").mkdir(parents=True)
    (root / "training" / "t.jsonl").write_bytes(_lines(training))
    if validation is not None:
        (root / "validation").mkdir()
        (root / "validation" / "v.jsonl").write_bytes(_lines(validation))
    return root


def _findings(plan: dict, code: str) -> list[dict]:
    return [f for f in plan["findings"] if f["code"] == code]


# ----------------------------------------------------------------------------- the scan, per format

USER, BOT = {"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello, how can I help?"}

TYPE_ERRORS = [
    param("messages", {"messages": "user: hi / assistant: hello"}, "`messages` is a string, expected a list of {role, content}", id="messages-string"),
    param("messages", {"messages": [USER, "hello"]}, "`messages` turn 2 is a string, expected {role, content}", id="messages-turn-string"),
    param("messages", {"messages": [USER, {"role": "assistant"}]}, "`messages` turn 2 has no `content`", id="messages-turn-no-content"),
    param("messages", {"messages": [USER, {"role": "assistant", "content": 7}]}, "`messages` turn 2 `content` is a number, expected a string", id="messages-content-number"),
    param("messages", {"messages": [BOT]}, "`messages` has no user turn", id="messages-no-user"),
    param("messages", {"messages": [USER]}, "`messages` has no assistant turn", id="messages-no-assistant"),
    param("messages", {"messages": [USER, BOT, USER]}, "ends with a user turn; the last turn must be the assistant's", id="messages-ends-with-user"),
    param("prompt_completion", {"prompt": "2 + 2?", "completion": 4}, "`completion` is a number, expected a string", id="completion-number"),
    param("prompt_completion", {"prompt": None, "completion": "x"}, "`prompt` is null, expected a string", id="prompt-null"),
    param("prompt_completion", {"prompt": ["a"], "completion": "x"}, "`prompt` is a list, expected a string", id="prompt-list"),
    param("prompt_completion", {"prompt": "a"}, "missing field completion", id="missing-completion"),
    param("prompt_completion", [1, 2], "a list, expected a JSON object", id="not-an-object"),
    param("preference", {"prompt": "p", "chosen": "c", "rejected": {"text": "r"}}, "`rejected` is an object, expected a string", id="rejected-object"),
    param("unpaired_preference", {"prompt": "p", "completion": "c", "label": "yes"}, "label must be true (desirable) or false", id="label-string"),
    param("prompt_answer", {"prompt": "2 + 2?", "answer": 4}, "`answer` is a number, expected a string", id="answer-number"),
    param("documents", {"text": True}, "`text` is a boolean, expected a string", id="text-boolean"),
]


@pytest.mark.parametrize("fmt, record, reason", TYPE_ERRORS)
def test_a_record_of_the_wrong_type_is_an_invalid_line_with_file_and_line(fmt, record, reason):
    good = {
        "messages": {"messages": [USER, BOT]},
        "prompt_completion": _pc(0),
        "preference": {"prompt": "p", "chosen": "c", "rejected": "r"},
        "unpaired_preference": {"prompt": "p", "completion": "c", "label": True},
        "prompt_answer": {"prompt": "2 + 2?", "answer": "4"},
        "documents": {"text": "A tent for two."},
    }[fmt]
    s = _scan(fmt, [good, "", record])
    assert (s.invalid_total, s.records, s.usable, s.unique) == (1, 1, 1, 1)
    assert s.invalid[0].line == 3
    assert reason in str(s.invalid[0]), str(s.invalid[0])
    assert str(s.invalid[0]).startswith(f"training/t.jsonl:{s.invalid[0].line}: ")


EMPTIES = [
    param("prompt_completion", {"prompt": "p", "completion": "  \n"}, "`completion` is empty", id="completion-blank"),
    param("prompt_completion", {"prompt": "", "completion": ""}, "`prompt` is empty", id="both-empty"),
    param("messages", {"messages": [USER, {"role": "assistant", "content": " "}]}, "`messages` turn 2 (assistant) has empty content", id="assistant-empty"),
    param("preference", {"prompt": "p", "chosen": "", "rejected": "r"}, "`chosen` is empty", id="chosen-empty"),
    param("preference", {"prompt": "p", "chosen_response": "c", "rejected_response": ""}, "`rejected_response` is empty", id="nemo-names"),
    param("unpaired_preference", {"prompt": "p", "completion": "", "label": False}, "`completion` is empty", id="unpaired-empty"),
    param("prompt_answer", {"prompt": "q", "answer": ""}, "`answer` is empty", id="answer-empty"),
    param("documents", {"text": "\t"}, "`text` is empty", id="document-empty"),
]


@pytest.mark.parametrize("fmt, record, reason", EMPTIES)
def test_an_empty_record_is_counted_but_not_usable(fmt, record, reason):
    s = _scan(fmt, [record])
    assert (s.records, s.usable, s.unique, s.empty, s.invalid_total) == (1, 0, 0, 1, 0)
    assert str(s.empty_at[0]) == f"training/t.jsonl:1: {reason}"


def test_duplicates_are_counted_once_whitespace_aside():
    a = _pc(1)
    spaced = {"prompt": "  Where is my   order 1001?", "completion": "Dear customer,\norder 1001 ships today.  "}
    s = _scan("prompt_completion", [a, _pc(2), a, spaced, a | {"id": 9}])
    assert (s.records, s.usable, s.unique, s.duplicates) == (5, 5, 2, 3)
    assert [str(b) for b in s.duplicate_at] == [
        "training/t.jsonl:3: duplicate of training/t.jsonl:1",
        "training/t.jsonl:4: duplicate of training/t.jsonl:1",
        "training/t.jsonl:5: duplicate of training/t.jsonl:1",  # fields outside the format do not count
    ]


def test_a_different_field_or_label_is_not_a_duplicate():
    s = _scan("prompt_completion", [{"prompt": "a", "completion": "b c"}, {"prompt": "a b", "completion": "c"}])
    assert s.unique == 2
    s = _scan("unpaired_preference", [{"prompt": "p", "completion": "c", "label": v} for v in (True, False)])
    assert s.unique == 2


def test_chat_duplicates_compare_roles_and_contents():
    chat = {"messages": [USER, BOT]}
    other_role = {"messages": [{"role": "system", "content": "Hi there"}, USER, BOT]}
    s = _scan("messages", [chat, chat, other_role])
    assert (s.usable, s.unique, s.duplicates) == (3, 2, 1)


def test_normalizing_spaces_never_merges_two_turns_or_two_fields():
    a = {"messages": [{"role": "user", "content": "a assistant b"}, {"role": "assistant", "content": "c"}]}
    b = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b assistant c"}]}
    assert _scan("messages", [a, b]).unique == 2
    s = _scan("prompt_completion", [{"prompt": "a b ", "completion": "c"}, {"prompt": "a", "completion": " b c"}])
    assert (s.unique, s.near_duplicates) == (2, 0)


def test_pairs_with_chosen_equal_to_rejected_are_not_usable():
    same = {"prompt": "p", "chosen": "Same answer.", "rejected": " Same  answer."}
    s = _scan("preference", [{"prompt": "p", "chosen": "c", "rejected": "r"}, same])
    assert (s.records, s.usable, s.unique, s.same_chosen_rejected) == (2, 1, 1, 1)
    assert str(s.same_chosen_rejected_at[0]) == "training/t.jsonl:2: chosen == rejected"


def test_near_duplicates_fold_case_and_punctuation():
    a = {"prompt": "Where is my order 1001?", "completion": "It ships today."}
    b = {"prompt": "where is my order 1001", "completion": "It ships TODAY!"}
    s = _scan("prompt_completion", [a, _pc(5), b, _pc(6)])
    assert (s.unique, s.duplicates, s.near_duplicates, s.near_duplicate_rate) == (4, 0, 1, 0.25)
    assert str(s.near_duplicate_at[0]).startswith("training/t.jsonl:3: near duplicate of training/t.jsonl:1")


def test_locations_are_capped_but_counts_are_not():
    s = _scan("prompt_completion", [_pc(1)] * 50 + [{"prompt": "", "completion": ""}] * 30 + ["{bad"] * 40)
    assert (s.duplicates, len(s.duplicate_at), s.empty, len(s.empty_at)) == (49, 5, 30, 5)
    assert (s.invalid_total, len(s.invalid)) == (40, 20)


def test_counts_must_nest():
    with pytest.raises(ValueError, match="counts must nest"):
        SplitStats(records=3, usable=2, unique=3)
    assert SplitStats(records=7).examples == 7  # declared counts: nothing was read


# ----------------------------------------------------------------------------- findings in the plan


def _plan(capsys, data: Path, *extra: str) -> tuple[int, dict]:
    rc, plan, err = run_json(capsys, "+goal=tone", "method=lora", f"data.path={data}", *extra)
    assert plan is not None, err
    return rc, plan


def test_400_copies_of_one_record_fail_the_floor(capsys, tmp_path):
    rows = [{"prompt": "Write to the customer about order 1.", "completion": "Dear customer, we are sorry."}] * 400
    rc, plan = _plan(capsys, _dataset(tmp_path / "d", rows, rows[:40]))
    assert rc == 1 and not plan["feasible"]
    (floor,) = _findings(plan, "data-floor")
    assert floor["severity"] == "error" and floor["path"] == "data"
    assert floor["message"].startswith("1 example (usable and unique, of 400 records: 399 duplicates): below the hard")
    quality = [f["message"] for f in _findings(plan, "data-quality")]
    assert any(
        m.startswith("399 duplicate record(s) in training/ (1 unique of 400 usable)")
        and "training/t.jsonl:2: duplicate of training/t.jsonl:1" in m
        and "(and 394 more)" in m
        for m in quality
    ), quality
    stats = plan["data_stats"]["training"]
    assert (stats["records"], stats["usable"], stats["unique"], stats["duplicates"]) == (400, 400, 1, 399)
    assert not _findings(plan, "lint-steps-per-epoch")  # the trainer still steps through 400 rows


def test_400_empty_records_have_no_usable_examples(capsys, tmp_path):
    rc, plan = _plan(capsys, _dataset(tmp_path / "d", [{"prompt": "", "completion": ""}] * 400))
    assert rc == 1
    (empty,) = _findings(plan, "data-empty")
    assert "(400 records, every one with an empty field or chosen == rejected)" in empty["message"]
    (floor,) = _findings(plan, "data-floor")
    assert floor["message"].startswith("0 examples (usable and unique, of 400 records: 400 empty)")
    (quality,) = _findings(plan, "data-quality")
    assert "training/t.jsonl:1: `prompt` is empty" in quality["message"]


def test_messages_given_as_a_string_are_invalid_lines(capsys, tmp_path):
    rows = [{"messages": f"user: order {i}? assistant: shipped"} for i in range(400)]
    rc, plan = _plan(capsys, _dataset(tmp_path / "d", rows), "data.format=messages")
    assert rc == 1
    (bad,) = _findings(plan, "data-invalid-lines")
    assert bad["severity"] == "error" and bad["path"] == "data.path"
    assert bad["message"].startswith(
        "400 unusable line(s) in training/: training/t.jsonl:1: `messages` is a string, expected a list of "
        "{role, content}; training/t.jsonl:2: "
    )
    assert bad["message"].endswith("(and 395 more)")


@pytest.mark.parametrize(
    "unique, copies, severity, fragment",
    [
        param(10, 40, "error", "10 examples (usable and unique, of 400 records: 390 duplicates): below the hard floor of 20", id="hard"),
        param(50, 8, "warning", "50 examples (usable and unique, of 400 records: 350 duplicates): below the 100 LoRA needs", id="soft"),
    ],
)
def test_floors_use_the_unique_count_where_the_raw_count_passes(capsys, tmp_path, unique, copies, severity, fragment):
    rows = [_pc(i) for i in range(unique) for _ in range(copies)]
    rc, plan = _plan(capsys, _dataset(tmp_path / "d", rows, [_pc(1000 + i) for i in range(20)]))
    assert rc == (1 if severity == "error" else 0)
    (floor,) = _findings(plan, "data-floor")
    assert floor["severity"] == severity and fragment in floor["message"], floor


def test_clean_data_has_no_quality_findings(capsys, tmp_path):
    rc, plan = _plan(capsys, _dataset(tmp_path / "d", [_pc(i) for i in range(400)], [_pc(1000 + i) for i in range(40)]))
    assert rc == 0
    assert not _findings(plan, "data-quality") and not _findings(plan, "data-floor")
    stats = plan["data_stats"]["training"]
    assert (stats["records"], stats["usable"], stats["unique"], stats["near_duplicate_rate"]) == (400, 400, 400, 0.0)


def test_near_duplicates_are_a_warning_with_the_rate(capsys, tmp_path):
    shouted = [{k: v.upper().replace("?", "") for k, v in _pc(i).items()} for i in range(100)]
    rows = [_pc(i) for i in range(300)] + shouted
    rc, plan = _plan(capsys, _dataset(tmp_path / "d", rows, [_pc(1000 + i) for i in range(40)]))
    assert rc == 0
    (near,) = [f for f in _findings(plan, "data-quality") if "case, punctuation or spacing" in f["message"]]
    assert near["severity"] == "warning"
    assert near["message"].startswith("25.0% of the unique records in training/ (100) repeat another")
    assert "training/t.jsonl:301: near duplicate of training/t.jsonl:1" in near["message"]


def test_validation_records_that_repeat_training_are_a_warning(capsys, tmp_path):
    """Two of 40 validation records are training records (one as is, one in capitals): reported with where each
    is and which training record it repeats; the clean data above has none."""
    shouted = {k: v.upper() for k, v in _pc(7).items()}
    validation = [_pc(1000 + i) for i in range(38)] + [_pc(3), shouted]
    rc, plan = _plan(capsys, _dataset(tmp_path / "d", [_pc(i) for i in range(400)], validation))
    assert rc == 0
    (leak,) = [f for f in _findings(plan, "data-quality") if "repeat a training record" in f["message"]]
    assert leak["severity"] == "warning" and leak["path"] == "data.path"
    assert leak["message"].startswith("2 of the 40 unique validation records repeat a training record")
    assert "validation/v.jsonl:39: repeats training record training/t.jsonl:4" in leak["message"]
    assert "validation/v.jsonl:40: repeats training record training/t.jsonl:8" in leak["message"]
    stats = plan["data_stats"]
    assert (stats["validation"]["in_training"], stats["training"]["in_training"]) == (2, 0)


def test_the_scan_finds_repeats_only_against_the_training_scan_it_is_given():
    training = SplitScan("prompt_completion", 4.0)
    training.add("training/t.jsonl", _lines([_pc(i) for i in range(5)]))
    validation = SplitScan("prompt_completion", 4.0)
    validation.add("validation/v.jsonl", _lines([_pc(2), _pc(9), _pc(2)]))  # _pc(2) twice: one unique record
    assert validation.stats(training).in_training == 1
    assert validation.stats().in_training == 0


# ----------------------------------------------------------------------------- data.path


@pytest.mark.parametrize("path", ["''", "'   '"])
def test_an_empty_data_path_is_an_error_not_the_working_folder(capsys, path):
    rc, plan, err = run_json(capsys, "+goal=tone", f"data.path={path}")
    assert rc == 2 and plan is None
    assert "data.path is empty: it would read the working folder as the dataset" in err
    assert "at: data.path" in err and "fix: set data.path to a folder holding training/*.jsonl" in err


def test_a_data_path_that_is_a_file_says_so(capsys, tmp_path):
    file = tmp_path / "train.jsonl"
    file.write_bytes(_lines([_pc(1)]))
    rc, plan, err = run_json(capsys, "+goal=tone", f"data.path={file}")
    assert rc == 2 and plan is None
    assert (
        f"data.path '{file}' is a file; data.path takes a folder holding training/ and validation/ (or builtin:<name>)"
        in err
    )
    assert "does not exist" not in err and "fix: put train.jsonl in a folder's training/" in err


def test_an_unknown_builtin_lists_the_shipped_ones():
    spec, _ = load(["+goal=tone", "data.path=builtin:tones"])
    with pytest.raises(ConfigError) as err:
        probe(spec.data, Path.cwd())
    assert err.value.path == "data.path" and "does not exist" in err.value.render()
    assert "builtin:tone" in err.value.render() and "builtin:legal_classification" in err.value.render()
