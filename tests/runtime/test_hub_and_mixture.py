"""Hugging Face Hub datasets (hf://org/name) and mixtures of datasets, through the planner and the runtime.

The Hub is never reached (HF_HUB_OFFLINE=1). The hub dataset is a real datasets cache entry: `datasets` itself
prepares it (its Json builder, as an online load_dataset does) and it sits where an online load of acme/tickets at
commit COMMIT leaves it, so the planner and the runtime read it with the same load_dataset calls as on a cluster.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from planner.paths import samples_dir
from runtime.data import read_split, splits
from schemas.plan import Plan
from tests.runtime.helpers import read_json, run_stage, write_bundle

pytestmark = pytest.mark.runtime

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TRAIN, VALIDATION = 60, 12


def _alpaca(i: int) -> dict:
    return {"instruction": "Reply to the ticket.", "input": f"Ticket {1000 + i}: order late.", "output": f"Sorry ({i})."}


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A datasets cache holding acme/tickets (train: 60 Alpaca rows, one without an output; validation: 12)."""
    datasets = pytest.importorskip("datasets")
    from datasets.packaged_modules.json.json import Json

    root = tmp_path_factory.mktemp("hub")
    src = root / "src"
    src.mkdir()
    rows = [_alpaca(i) for i in range(TRAIN)]
    rows[5] = {"instruction": "Reply to the ticket.", "input": "no output here"}
    (src / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "validation.jsonl").write_text("".join(json.dumps(_alpaca(500 + i)) + "\n" for i in range(VALIDATION)))
    datasets.disable_progress_bars()
    builder = Json(
        cache_dir=str(root / "build"),
        dataset_name="tickets",
        config_name="default",
        hash=COMMIT,
        data_files={"train": [str(src / "train.jsonl")], "validation": [str(src / "validation.jsonl")]},
    )
    builder.download_and_prepare()
    cache = root / "cache"
    shutil.copytree(builder.cache_dir, cache / "acme___tickets" / "default" / "0.0.0" / COMMIT)
    return cache


@pytest.fixture
def offline_cache(hub_cache, monkeypatch) -> Path:
    monkeypatch.setenv("HF_DATASETS_CACHE", str(hub_cache))
    return hub_cache


HUB = ("+goal=tone", "method=lora", "data.path=hf://acme/tickets", "data.format=alpaca")


def test_the_planner_reads_a_cached_hub_dataset_offline_and_pins_its_commit(offline_cache):
    from tests.unit.helpers import make_plan

    plan = make_plan(*HUB, "model=tiny-llama", "inventory=local")
    stats = plan.data_stats
    assert (stats.source, stats.counts, stats.token_estimate) == ("hub", "measured", "chars/4")
    assert (stats.training.records, stats.training.usable, stats.training.invalid_total) == (TRAIN - 1, TRAIN - 1, 1)
    assert stats.validation is not None and stats.validation.records == VALIDATION
    assert [str(b) for b in stats.training.invalid] == ["train:6: `output` is null, expected a string"]
    bad = next(f for f in plan.findings if f.code == "data-invalid-lines")
    assert bad.path == "data.path" and "train:6: `output` is null, expected a string" in bad.message
    data = plan.stage("train").data
    assert data is not None and data.hub is not None
    assert (data.hub.repo, data.hub.revision, data.hub.training_rows) == ("acme/tickets", COMMIT, TRAIN)
    assert not any(f.code == "data-counts" for f in plan.findings)  # measured: nothing to say


def test_the_runtime_loads_the_planned_hub_dataset_and_refuses_another(offline_cache, tmp_path, tiny_dir):
    bundle = write_bundle(tmp_path, *HUB)
    assert run_stage(bundle, "validate_data") == 1  # the row without an output
    report = read_json(bundle / "run/validate_data/report.json")
    assert report["splits"]["training"]["invalid"] == ["train:6: `output` is null, expected a string"]
    assert (report["splits"]["training"]["usable"], report["splits"]["validation"]["records"]) == (59, VALIDATION)
    plan = Plan.model_validate(read_json(bundle / "plan.json"))
    data = plan.stage("train").data
    assert data is not None and data.hub is not None
    train, validation = splits(data)
    assert (len(train), len(validation)) == (TRAIN, VALIDATION)  # the trainers skip the bad row, as for files
    assert train[0] == {"prompt": "Reply to the ticket.\n\nTicket 1000: order late.", "completion": "Sorry (0)."}

    from runtime.context import StageFailed
    from runtime.hub_data import rows

    with pytest.raises(StageFailed, match=f"pins commit {'f' * 40}, the datasets cache holds another"):
        rows(data.hub.model_copy(update={"revision": "f" * 40}), "train")
    with pytest.raises(StageFailed, match="has 60 rows, the plan counted 61: the dataset changed since planning"):
        rows(data.hub.model_copy(update={"training_rows": 61}), "train")


def test_offline_without_the_dataset_cached_the_stage_fails_with_the_command_that_fills_the_cache(
    offline_cache, tmp_path, capsys
):
    # planned offline from declared counts: the plan says so, the run needs the data itself
    bundle = write_bundle(tmp_path, *HUB[:2], "data.path=hf://acme/elsewhere@v3", "data.format=alpaca",
                          "+data.declared.training=500", "+data.declared.validation=50")
    plan = read_json(bundle / "plan.json")
    assert plan["data_stats"]["counts"] == "declared"
    assert run_stage(bundle, "validate_data") == 1
    status = read_json(bundle / "run/validate_data/status.json")
    assert status["state"] == "failed"
    assert f"hf://acme/elsewhere is not in the datasets cache ({offline_cache}) and HF_HUB_OFFLINE is set" in (
        status["error"]
    )
    assert "datasets.load_dataset('acme/elsewhere', revision='v3')" in status["error"]


def _by_part(records: list[dict], parts: dict[str, list[dict]]) -> Counter:
    """Which part each record of the mix is (by its content: the parts hold different texts)."""
    index = {json.dumps(r, sort_keys=True): key for key, rs in parts.items() for r in rs}
    return Counter(index.get(json.dumps(r, sort_keys=True), "?") for r in records)


def test_the_runtime_builds_the_planned_mix_and_trains_on_it(tmp_path, tiny_dir):
    bundle = write_bundle(tmp_path, "+goal=tone", "data=support_mix", "method=lora", "method.max_steps=2")
    plan = Plan.model_validate(read_json(bundle / "plan.json"))
    data = plan.stage("train").data
    assert data is not None and data.mixture is not None
    planned = {p.key: p.drawn for p in plan.data_stats.mixture}
    assert planned == {"data.mixture[0]": 400, "data.mixture[1]": 133}
    parts = {
        "data.mixture[0]": read_split(samples_dir() / "alpaca", "training", "alpaca"),
        "data.mixture[1]": read_split(samples_dir() / "support_format", "training", "prompt_completion"),
    }
    train, validation = splits(data)
    assert _by_part(train, parts) == planned
    # upsampling repeats: each of the 40 answers 3 or 4 times; every email once; the order is shuffled
    repeats = Counter(json.dumps(r, sort_keys=True) for r in train)
    assert sorted(Counter(repeats[json.dumps(r, sort_keys=True)] for r in parts["data.mixture[1]"]).items()) == [
        (3, 27), (4, 13)]
    assert {repeats[json.dumps(r, sort_keys=True)] for r in parts["data.mixture[0]"]} == {1}
    assert train[:400] != parts["data.mixture[0]"]
    assert splits(data) == (train, validation)  # seeded: the same mix on every run
    assert len(validation) == 80

    assert run_stage(bundle, "validate_data") == 0
    report = read_json(bundle / "run/validate_data/report.json")
    assert report["mixture"] == {"drawn": planned, "training": 533, "validation": 80}
    assert report["sources"]["data.mixture[1]"]["splits"]["training"]["unique"] == 40

    assert run_stage(bundle, "train") == 0
    status = read_json(bundle / "run/train/status.json")
    assert status["mixture_drawn"] == planned
    assert (status["train_examples"], status["validation_examples"]) == (533, 80)
    assert status["train_examples"] == plan.data_stats.training.rows  # what the steps were planned on


def test_a_mixture_with_a_hub_part_plans_and_draws_from_the_cache(offline_cache, tmp_path):
    mixture = ("[{path: 'hf://acme/tickets', format: alpaca, weight: 1},"
               " {path: 'builtin:support_format', format: prompt_completion, weight: 1}]")
    bundle = write_bundle(tmp_path, "+goal=tone", "method=lora", "data=support_mix", f"data.mixture={mixture}",
                          "data.stopping_strategy=first_exhausted")
    plan = Plan.model_validate(read_json(bundle / "plan.json"))
    assert [(p.key, p.stats.source, p.pool, p.drawn) for p in plan.data_stats.mixture] == [
        ("data.mixture[0]", "hub", 59, 40), ("data.mixture[1]", "builtin", 40, 40)]
    data = plan.stage("train").data
    assert data is not None and data.mixture is not None
    hub_part = data.mixture.parts[0]
    assert hub_part.hub is not None and hub_part.hub.revision == COMMIT
    train, validation = splits(data)
    parts = {
        "data.mixture[0]": [r for r in (json.loads(x) for x in _hub_lines(offline_cache)) if r["output"]],
        "data.mixture[1]": read_split(samples_dir() / "support_format", "training", "prompt_completion"),
    }
    from schemas.records import to_shape

    parts["data.mixture[0]"] = [to_shape(r, "alpaca") for r in parts["data.mixture[0]"]]
    assert _by_part(train, parts) == {"data.mixture[0]": 40, "data.mixture[1]": 40}
    assert len(validation) == VALIDATION + 30


def _hub_lines(cache: Path) -> list[str]:
    import datasets

    ds = datasets.load_dataset("acme/tickets", split="train", cache_dir=str(cache))
    return [json.dumps(r) for r in ds.to_list()]


def test_the_model_card_names_the_hub_datasets_trained_on(offline_cache, tmp_path):
    from runtime.hub import readme

    mixture = ("[{path: 'hf://acme/tickets', format: alpaca, weight: 1},"
               " {path: 'builtin:support_format', format: prompt_completion, weight: 1}]")
    bundle = write_bundle(tmp_path, "+goal=tone", "method=lora", "data=support_mix", f"data.mixture={mixture}")
    plan = Plan.model_validate(read_json(bundle / "plan.json"))
    text = readme(plan, {"data": {"name": "support_mix"}}, {"verdict": "pass"}, lora=True)
    front = text.split("---\n")[1]
    assert "datasets:\n- acme/tickets\n" in front
    assert "a mixture: hf://acme/tickets (50%, 59 records), builtin:support_format (50%, 59 records)" in text
