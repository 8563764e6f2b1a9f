"""`python -m planner` is a Hydra application: Hydra's flags, -m sweeps ending in one comparison, a team's own
config folders (hydra.searchpath, --config-dir) seen by every check, and nothing written to the working folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from planner.paths import conf_dir
from tests.unit.helpers import run_cli


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path, monkeypatch):
    """Every test runs in an empty folder and checks, at the end, that Hydra left nothing there."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    yield work
    assert sorted(p.name for p in work.iterdir()) == []
    assert not (tmp_path / "tmp" / "planner-multirun").exists()


@pytest.fixture
def team_conf(tmp_path) -> Path:
    """A team's own folder: a goal and an inventory copied from the shipped ones under new names."""
    root = tmp_path / "team-conf"
    (root / "goal").mkdir(parents=True)
    (root / "inventory").mkdir()
    goal = (conf_dir() / "goal" / "tone.yaml").read_text().replace("  name: tone\n", "  name: my_tone\n")
    (root / "goal" / "my_tone.yaml").write_text(goal)
    inventory = (conf_dir() / "inventory" / "dgx-h100.yaml").read_text().replace("name: dgx-h100", "name: my-cluster")
    (root / "inventory" / "my-cluster.yaml").write_text(inventory)
    return root


def test_help_is_the_apps_own_with_groups_and_options(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert out.startswith("usage: python -m planner +goal=<name>")
    assert "== Config groups" in out and "== Flags ==" in out
    for group, option in (("goal", "tone"), ("model", "tiny-llama"), ("inventory", "h100-2node"), ("method", "grpo")):
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{group}:"))
        assert option in line


def test_hydra_help(capsys):
    code, out, _ = run_cli(capsys, "--hydra-help")
    assert code == 0 and "--multirun" in out and "--config-dir" in out


@pytest.mark.parametrize(
    "flags, marker",
    [
        (["--cfg", "job"], "goal:\n  name: tone"),
        (["--cfg", "hydra"], "searchpath:"),
        (["--cfg", "all", "--resolve"], "hydra:\n"),
        (["--cfg", "job", "--package", "goal"], "name: tone"),
        (["--info", "searchpath"], str(conf_dir())),
        (["--info", "defaults"], "goal/tone"),
        (["-sc", "install=bash"], "complete -o nospace"),
    ],
)
def test_hydra_flags(capsys, flags, marker):
    code, out, err = run_cli(capsys, *flags, "+goal=tone")
    assert code == 0, err
    assert marker in out


def test_cfg_job_shows_overrides_applied(capsys):
    code, out, _ = run_cli(capsys, "--cfg", "job", "+goal=tone", "method=lora", "method.learning_rate=5e-5")
    assert code == 0
    assert "kind: lora" in out and "learning_rate: 5.0e-05" in out


def test_config_path_and_name_flags(capsys):
    code, out, err = run_cli(capsys, "-cp", str(conf_dir()), "-cn", "config", "+goal=tone", "dry_run=true")
    assert code == 0, err
    assert "goal tone: FEASIBLE" in out


def test_sweep_ends_in_one_table_with_the_worst_exit_code(capsys):
    code, out, _err = run_cli(
        capsys,
        "-m",
        "+goal=tone",
        "model=llama-3.1-8b-instruct,llama-3.1-70b-instruct",
        "inventory=dgx-h100,l40s-4",
        "dry_run=true",
    )
    assert out.startswith("sweep: 4 runs\n"), out[:300]
    assert "plan " not in out  # one table, not four reports
    header, *rows = out.splitlines()[1:]
    assert header.split()[:5] == ["goal", "model", "inventory", "method", "feasible"]
    assert len(rows) == 4
    feasible = [r.split()[4] for r in rows]
    # the 70B model does not fit the L40S box's pinned layout: one NO, and the sweep exits with it
    assert feasible.count("NO") >= 1 and code == 1
    assert header.rstrip().endswith("first error")


def test_sweep_json_is_one_array(capsys):
    code, out, _ = run_cli(
        capsys, "-m", "+goal=tone", "inventory=dgx-h100,l40s-4", "method=lora,sft", "dry_run=true", "report=json"
    )
    rows = json.loads(out)
    assert isinstance(rows, list) and len(rows) == 4
    assert {(r["inventory"], r["method"]) for r in rows} == {
        ("dgx-h100", "lora"),
        ("dgx-h100", "sft"),
        ("l40s-4", "lora"),
        ("l40s-4", "sft"),
    }
    for r in rows:
        assert set(r) >= {"goal", "model", "feasible", "gpus", "memory_per_gpu_gb", "gpu_hours", "cost_usd", "error"}
    assert code == max(0 if r["feasible"] else 1 for r in rows)


def test_sweep_over_values_shows_the_swept_key(capsys):
    code, out, _ = run_cli(
        capsys, "-m", "+goal=tone", "method=lora", "method.learning_rate=1e-4,5e-5", "dry_run=true", "report=json"
    )
    rows = json.loads(out)
    assert code == 0
    assert [float(r["swept"]["method.learning_rate"]) for r in rows] == [1e-4, 5e-5]
    assert rows[0]["plan_id"] != rows[1]["plan_id"]


def test_sweep_with_an_invalid_run_exits_2_and_names_it(capsys):
    code, out, _err = run_cli(
        capsys, "-m", "+goal=tone", "method=lora", "method.learning_rate=1e-4,-1", "dry_run=true", "report=json"
    )
    rows = json.loads(out)
    assert code == 2
    assert rows[0]["feasible"] is True and rows[1]["feasible"] is False
    assert "learning_rate" in rows[1]["error"]


def test_a_bundle_run_writes_only_the_bundle(capsys, _empty_cwd, tmp_path):
    code, _, err = run_cli(capsys, "+goal=tone", f"out_dir={tmp_path / 'runs'}")
    assert code == 0, err
    assert (tmp_path / "runs").is_dir()


def test_own_folder_through_searchpath(capsys, team_conf):
    code, out, err = run_cli(
        capsys,
        "+goal=my_tone",
        "inventory=my-cluster",
        f"hydra.searchpath=[file://{team_conf}]",
        "dry_run=true",
        "report=json",
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["spec"]["goal"]["name"] == "my_tone" and plan["spec"]["inventory"]["name"] == "my-cluster"


def test_own_folder_through_config_dir(capsys, team_conf):
    code, out, err = run_cli(capsys, "--config-dir", str(team_conf), "+goal=my_tone", "dry_run=true")
    assert code == 0, err
    assert "goal my_tone: FEASIBLE" in out


def test_did_you_mean_and_goal_list_see_every_folder(capsys, team_conf):
    code, _, err = run_cli(capsys, "+goal=my_tne", f"hydra.searchpath=[file://{team_conf}]", "dry_run=true")
    assert code == 2
    assert "unknown goal 'my_tne'. Did you mean 'my_tone'?" in err
    assert "hydra.searchpath" in err and "site-packages" not in err
    code, _, err = run_cli(capsys, f"hydra.searchpath=[file://{team_conf}]", "dry_run=true")
    assert code == 2 and "no goal given" in err and "my_tone" in err
    code, _, err = run_cli(
        capsys, "-m", "+goal=tone", "inventory=my-cluster,my-clustr", "--config-dir", str(team_conf), "dry_run=true"
    )
    assert code == 2 and "Did you mean 'my-cluster'?" in err


def test_without_the_folder_the_team_goal_is_unknown(capsys):
    code, _, err = run_cli(capsys, "+goal=my_tone", "dry_run=true")
    assert code == 2 and "unknown goal 'my_tone'" in err


def test_diff_plans_a_team_goal_like_the_planner(capsys, team_conf):
    from planner.diff import main as diff_main

    root = Path(__file__).resolve().parents[2]
    conf_copy = team_conf.parent / "conf-copy"
    shutil.copytree(conf_dir(), conf_copy)
    code = diff_main(
        [
            "--base",
            str(conf_copy),
            "--head",
            str(conf_dir()),
            "--repo",
            str(root),
            "goals=my_tone",
            f"hydra.searchpath=[file://{team_conf}]",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "my_tone: no change" in out


@pytest.mark.parametrize("prefix", ["ladder", "python -m planner", "/usr/bin/python3 -m planner"])
def test_shell_completion_query(capsys, monkeypatch, prefix):
    line = f"{prefix} +goal=tone inventory=l"
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line)))
    code, out, err = run_cli(capsys, "-sc", "query=bash")
    assert code == 0, err
    assert out.split() == ["inventory=l40s-4", "inventory=local"]


def _help_examples() -> list[tuple[list[str], int]]:
    import contextlib
    import io
    import shlex

    from planner.__main__ import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["--help"])
    text = buf.getvalue()
    block = text.split("examples:", 1)[1].split("\n  exit:", 1)[0]
    examples = []
    for line in block.splitlines():
        command, _, comment = line.partition("#")
        if command.strip().startswith("python -m planner"):
            examples.append((shlex.split(command)[3:], 1 if "NOT feasible" in comment else 0))
    return examples


def test_help_examples_run_as_the_help_says(capsys, tmp_path):
    """Each example of --help runs (planning only) and exits as its comment says; the searchpath example runs
    against a folder holding its goal."""
    examples = _help_examples()
    assert len(examples) >= 5 and any(code == 1 for _, code in examples)
    team = tmp_path / "team-conf" / "goal"
    team.mkdir(parents=True)
    goal = (conf_dir() / "goal" / "tone.yaml").read_text().replace("  name: tone\n", "  name: my_goal\n")
    (team / "my_goal.yaml").write_text(goal)
    for args, expected in examples:
        args = [a.replace("file:///path/to/team-conf", f"file://{team.parent}") for a in args]
        extra = [] if args[0].startswith("--cfg") else ["dry_run=true"]
        code, out, err = run_cli(capsys, *args, *extra)
        assert code == expected, (args, err[-1500:])
        assert out.strip()
