"""Re-planning never destroys results: write_bundle into an existing bundle rewrites the compiled files and
keeps run/ and logs/; overwrite=true is the one way to start over; an error mid-write changes nothing. No torch."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from planner.bundle import RUN_SCRIPT, remove_results, write_bundle
from runtime.context import RUN_SCRIPTS
from tests.unit.helpers import run_cli

COMPILED = {
    "plan.json": '{"id": "one"}\n',
    "config.yaml": "goal: one\n",
    "report.md": "# one\n",
    "launch/run_local.sh": "#!/usr/bin/env bash\necho one\n",
    "launch/old_stage.sh": "#!/usr/bin/env bash\necho stale\n",
}
RECOMPILED = {
    "plan.json": '{"id": "two"}\n',
    "config.yaml": "goal: two\n",
    "report.md": "# two\n",
    "launch/run_local.sh": "#!/usr/bin/env bash\necho two\n",
}
RESULTS = {
    "run/train/status.json": '{"state": "cancelled"}\n',
    "run/train/checkpoints/checkpoint-10/trainer_state.json": "{}\n",
    "run/train/adapter/adapter_model.safetensors": "weights",
    "run/gate/report.html": "<html>PASS</html>",
    "run/publish/model_card.json": "{}\n",
    "logs/train-123.out": "step 10\n",
    "notes.md": "the team's own notes in the bundle folder\n",
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _bundle_with_results(tmp_path: Path) -> Path:
    bundle = write_bundle(COMPILED, tmp_path, "tone-abc")
    for rel, text in RESULTS.items():
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        (bundle / rel).write_text(text)
    return bundle


def test_replanning_keeps_run_and_logs_and_rewrites_the_compiled_files(tmp_path):
    bundle = _bundle_with_results(tmp_path)
    assert write_bundle(RECOMPILED, tmp_path, "tone-abc") == bundle
    tree = _tree(bundle)
    for rel, text in RESULTS.items():
        assert tree.pop(rel) == text.encode(), f"{rel} was not kept"
    assert tree == {rel: text.encode() for rel, text in RECOMPILED.items()}  # launch/old_stage.sh is gone
    assert stat.S_IMODE((bundle / "launch/run_local.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((bundle / "plan.json").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["tone-abc"]
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]  # no temporary files or folders left


def test_an_infeasible_replan_drops_the_old_launch_scripts(tmp_path):
    bundle = _bundle_with_results(tmp_path)
    write_bundle({k: v for k, v in RECOMPILED.items() if not k.startswith("launch/")}, tmp_path, "tone-abc")
    assert not (bundle / "launch").exists()
    assert (bundle / "run/train/checkpoints/checkpoint-10/trainer_state.json").is_file()


@pytest.mark.parametrize("broken", ["launch/run_local.sh", "plan.json", "report.md"])
def test_an_error_mid_write_leaves_the_bundle_as_it_was(tmp_path, broken):
    bundle = _bundle_with_results(tmp_path)
    before = _tree(bundle)
    files = {**RECOMPILED, broken: None}  # writing None raises TypeError halfway through the compile
    with pytest.raises(TypeError):
        write_bundle(files, tmp_path, "tone-abc")
    assert _tree(bundle) == before
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]
    assert [p.name for p in tmp_path.iterdir()] == ["tone-abc"]


def test_an_error_writing_a_new_bundle_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        write_bundle({**RECOMPILED, "report.md": None}, tmp_path, "tone-abc")
    assert list(tmp_path.iterdir()) == []


def test_compiled_files_cannot_land_in_the_results(tmp_path):
    with pytest.raises(ValueError, match="holds results"):
        write_bundle({"run/train/status.json": "{}"}, tmp_path, "b")
    with pytest.raises(ValueError, match="holds results"):
        write_bundle({"logs/x": ""}, tmp_path, "b")


def test_remove_results_drops_run_and_logs_only(tmp_path):
    bundle = _bundle_with_results(tmp_path)
    assert remove_results(bundle) == ["run/", "logs/"]
    assert _tree(bundle) == {
        **{rel: text.encode() for rel, text in COMPILED.items()},
        "notes.md": RESULTS["notes.md"].encode(),
    }
    assert not [p for p in bundle.iterdir() if p.name.startswith(".")]
    assert remove_results(bundle) == []


# ----------------------------------------------------------------------------- the CLI

TINY = ("+goal=tone", "model=tiny-llama", "inventory=local")


def test_cli_replan_keeps_results_and_overwrite_starts_over(capsys, tmp_path):
    out = f"out_dir={tmp_path}"
    code, _, err = run_cli(capsys, *TINY, out)
    assert code == 0, err
    bundle = Path(err.split("bundle: ", 1)[1].splitlines()[0])
    plan = json.loads((bundle / "plan.json").read_text())
    checkpoint = bundle / "run/train/checkpoints/checkpoint-5/trainer_state.json"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("{}")
    (bundle / "run/train/status.json").write_text(json.dumps({"plan_id": plan["id"], "state": "cancelled"}))
    (bundle / "logs").mkdir()
    (bundle / "logs/train.out").write_text("step 5\n")
    (bundle / "launch/stale.sh").write_text("echo stale\n")
    (bundle / "plan.json").write_text("edited by hand\n")

    code, _, err = run_cli(capsys, *TINY, out)
    assert code == 0, err
    assert checkpoint.is_file() and (bundle / "logs/train.out").read_text() == "step 5\n"
    assert "kept run/ and logs/" in err and "overwrite=true starts over" in err
    assert json.loads((bundle / "plan.json").read_text())["id"] == plan["id"]  # the compiled files are rewritten
    assert not (bundle / "launch/stale.sh").exists() and (bundle / "launch/run_local.sh").is_file()

    code, _, err = run_cli(capsys, *TINY, out, "overwrite=true")
    assert code == 0, err
    assert "overwrite=true: removed run/ and logs/" in err
    assert not (bundle / "run").exists() and not (bundle / "logs").exists()
    assert (bundle / "plan.json").is_file() and (bundle / "launch/run_local.sh").is_file()


def test_overwrite_with_dry_run_is_refused(capsys):
    code, _, err = run_cli(capsys, "+goal=tone", "dry_run=true", "overwrite=true")
    assert code == 2 and "overwrite" in err and "dry_run" in err


def test_runtime_names_the_same_run_scripts():
    """runtime.context keeps its own copy of each launcher's run script (for its resume hint: the runtime imports
    no planner); it must match the launchers'."""
    assert RUN_SCRIPTS == RUN_SCRIPT


@pytest.mark.parametrize("json_report", [True, False], ids=["report-json", "report-text"])
def test_launch_keeps_stdout_for_the_json_plan(tmp_path, capfd, json_report):
    """report=json launch=true: the stages' output goes to stderr, so stdout holds the plan and nothing else."""
    from planner.bundle import launch
    from tests.unit.helpers import make_plan

    plan = make_plan("+goal=tone", "model=tiny-llama", "inventory=local")
    script = tmp_path / RUN_SCRIPT[plan.decision.launcher]
    script.parent.mkdir(parents=True)
    script.write_text("echo stage-output\n")
    assert launch(tmp_path, plan, stdout_is_data=json_report) == 0
    out, err = capfd.readouterr()
    assert ("stage-output" in err) == json_report and ("stage-output" in out) == (not json_report)
