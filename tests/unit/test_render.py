"""The compiled bundle: deterministic, shellcheck-clean, literal #SBATCH lines, injection-proof.

Executes the generated scripts for real with fake `python`, `srun`, `sbatch` (tests/fakes.py) and
proves that hostile values in the configuration never run as commands. No torch.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import subprocess
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from planner.bundle import launch, write_bundle
from planner.compose import load
from planner.core import plan as make_plan_from_spec
from planner.errors import ConfigError
from planner.launchers import LAUNCHERS
from planner.launchers.slurm import sbatch_directives_ok
from planner.paths import conf_dir, templates_dir
from planner.probe import probe
from planner.tokens import token_counter
from planner.render import render
from planner.report import markdown
from schemas.launcher import LauncherKind
from schemas.spec import Spec
from tests.fakes import calls, fake_python, fake_slurm_bin, stages_run
from tests.unit.helpers import make_plan

GOALS = sorted(p.stem for p in (conf_dir() / "goal").glob("*.yaml"))
LAUNCHER_KINDS = ("auto", "local", "torchrun", "slurm")
REPORT = "# report\n"
TWO_NODES = (
    "+goal=domain_shift",
    "model=llama-3.1-8b-instruct",
    "inventory=h100-2node",
    "method=sft",
    "launcher=slurm",
    "layout.nodes=2",
    "layout.gpus_per_node=8",
)
TINY_LOCAL = ("+goal=tone", "model=tiny-llama", "inventory=local")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


@pytest.fixture(scope="module")
def shellcheck() -> str:
    path = shutil.which("shellcheck")
    if path is None:
        if _in_ci():
            pytest.fail("shellcheck is not installed; CI must have it (.ci/run installs it)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    return path


def _scripts(files: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in files.items() if k.endswith((".sh", ".sbatch"))}


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **kwargs)


# --- the registry and the launcher resolution ---------------------------------------------------


def test_launcher_registry_matches_schema():
    assert set(LAUNCHERS) == set(typing.get_args(LauncherKind)) - {"auto"}
    for kind, launcher in LAUNCHERS.items():
        assert launcher.kind == kind
        assert launcher.run_script.startswith("launch/"), kind


def test_each_launcher_names_its_templates():
    """A launcher's templates are exactly the files in templates/<kind>/ (none unused, none missing)."""
    for kind, launcher in LAUNCHERS.items():
        shipped = sorted(p.relative_to(templates_dir()).as_posix() for p in (templates_dir() / kind).glob("*.j2"))
        assert sorted(launcher.templates) == shipped, kind


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (("+goal=tone", "inventory=dgx-h100"), "slurm"),
        (("+goal=tone", "model=tiny-llama", "inventory=local"), "local"),
        (("+goal=tone", "inventory=h200-1"), "torchrun"),
        (("+goal=tone", "inventory=dgx-h100", "launcher=torchrun"), "torchrun"),
        (("+goal=tone", "inventory=local", "launcher=slurm"), "slurm"),
    ],
    ids=["slurm-scheduler", "cpu-local", "gpu-no-scheduler", "explicit-torchrun", "explicit-slurm"],
)
def test_resolve_launcher(overrides, expected):
    plan = make_plan(*overrides)
    assert plan.decision.launcher == expected
    files = render(plan, REPORT)
    script = {"local": "launch/run_local.sh", "torchrun": "launch/run_torchrun.sh", "slurm": "launch/submit.sh"}
    assert script == {kind: launcher.run_script for kind, launcher in LAUNCHERS.items()}
    assert script[expected] in files
    assert not set(script.values()) - {script[expected]} & set(files)


# --- determinism ----------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "overrides",
    [("+goal=safety_alignment", "launcher=slurm"), TINY_LOCAL, ("+goal=tone", "inventory=h200-1")],
    ids=["slurm", "local", "torchrun"],
)
def test_bundle_is_byte_identical_and_relocatable(overrides, tmp_path):
    first = render(plan := make_plan(*overrides), markdown(plan))
    second = render(plan := make_plan(*overrides), markdown(plan))
    assert first == second
    assert list(first) == sorted(first)
    assert {"plan.json", "config.yaml", "report.md"} <= set(first)
    a = write_bundle(first, tmp_path / "a", "bundle")
    b = write_bundle(second, tmp_path / "b", "bundle")
    assert _tree(a) == _tree(b)
    for rel, (_, mode) in _tree(a).items():
        assert mode == (0o755 if rel.endswith((".sh", ".sbatch")) else 0o644), rel
    for rel, text in first.items():
        if rel == "plan.json":  # the resolved data files, replay text and benchmark are absolute, by design
            text = _without_resolved_paths(text)
        for absolute in (str(Path.cwd()), str(conf_dir()), str(tmp_path), "/home/", "/tmp/"):
            assert absolute not in text, f"{rel} holds an absolute path {absolute!r}"
        assert not re.search(r"\b20\d\d-\d\d-\d\d[T ]\d\d:\d\d", text), f"{rel} holds a timestamp"


def _without_resolved_paths(text: str) -> str:
    """plan.json less the fields that hold where the data lives on this machine (and only those)."""
    plan = json.loads(text)
    plan["data_stats"].pop("root")
    for stage in plan["stages"]:
        stage.pop("data")
        if stage.get("evaluation"):
            stage["evaluation"].pop("general_benchmark_path")
        if stage.get("method") and stage["method"].get("replay"):
            stage["method"]["replay"].pop("data")
    return json.dumps(plan)


def test_plan_json_and_config_yaml_round_trip():
    plan = make_plan("+goal=safety_alignment", "launcher=slurm")
    files = render(plan, REPORT)
    assert files["plan.json"] == plan.model_dump_json(indent=2) + "\n"
    assert type(plan).model_validate_json(files["plan.json"]) == plan
    assert yaml.safe_load(files["config.yaml"]) == plan.spec.model_dump(mode="json")
    assert files["report.md"] == REPORT
    for rel, text in _scripts(files).items():
        assert text.startswith("#!/usr/bin/env bash\n# Generated by ladder-planner"), rel
        assert f"from plan {plan.id}" in text.splitlines()[1], rel
        assert "Run: " in text, rel
    assert files["config.yaml"].startswith(f"# Generated by ladder-planner (planner/render.py) from plan {plan.id}")


def test_secrets_in_the_environment_never_reach_the_bundle(monkeypatch):
    for name in ("HF_TOKEN", "WANDB_API_KEY", "HF_HOME"):
        monkeypatch.setenv(name, f"secret-{name.lower()}-value")
    for overrides in (("+goal=tone", "launcher=slurm"), TINY_LOCAL, ("+goal=tone", "inventory=h200-1")):
        for rel, text in render(make_plan(*overrides), REPORT).items():
            assert "secret-" not in text, rel
            if rel.startswith("launch/"):
                assert "pass through from the calling shell" in text, rel


# --- every shipped goal x launcher compiles to clean scripts --------------------------------------


def test_every_goal_and_launcher_compiles_clean(shellcheck, tmp_path):
    assert len(GOALS) >= 7, GOALS
    cases = 0
    paths = []
    for goal in GOALS:
        for kind in LAUNCHER_KINDS:
            plan = make_plan(f"+goal={goal}", f"launcher={kind}")
            if any(f.code == "launcher-multinode" for f in plan.findings):  # the fix the check names
                plan = make_plan(f"+goal={goal}", f"launcher={kind}", "layout.nodes=1")
            files = render(plan, REPORT)
            bundle = write_bundle(files, tmp_path, f"{goal}-{kind}")
            for rel, text in _scripts(files).items():
                paths.append(bundle / rel)
                if rel.endswith(".sbatch"):
                    assert sbatch_directives_ok(text) == [], f"{goal}/{kind}/{rel}"
            cases += 1
    assert cases >= 28 and len(paths) >= 7 * (3 + 6), (cases, len(paths))
    for path in paths:
        syntax = _run(["bash", "-n", str(path)])
        assert syntax.returncode == 0, f"{path}: {syntax.stderr}"
    result = _run([shellcheck, "-S", "style", *map(str, paths)])
    assert result.returncode == 0, result.stdout + result.stderr


# --- the Slurm scripts ----------------------------------------------------------------------------


def _directives(text: str) -> list[str]:
    return [line.removeprefix("#SBATCH ") for line in text.splitlines() if line.startswith("#SBATCH")]


def test_two_node_sft_is_literal_and_uses_c10d():
    files = render(make_plan(*TWO_NODES), REPORT)
    train = files["launch/train.sbatch"]
    directives = _directives(train)
    assert "--nodes=2" in directives
    assert "--ntasks-per-node=1" in directives
    assert "--gpus-per-node=8" in directives
    assert "--mem=0" in directives and "--cpus-per-task=112" in directives
    assert "--partition=gpu" in directives
    assert any(re.fullmatch(r"--output=logs/train-%j\.out", d) for d in directives)
    assert 'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in train
    command = " ".join(train.split("\\\n"))
    assert re.search(
        r"srun --kill-on-bad-exit=1 --cpus-per-task=112\s+python -m torch.distributed.run\s+"
        r"--nnodes 2 --nproc-per-node 8\s+--rdzv-backend c10d --rdzv-endpoint \"\$head:29500\" "
        r"--rdzv-id \"\$SLURM_JOB_ID\"\s+--signals-to-handle SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 "
        r"--shutdown-timeout \d+\s+-m runtime plan\.json --stage train \|\| rc=\$\?",
        command,
    ), train
    assert "--node-rank" not in train  # c10d assigns ranks
    for rel, text in files.items():
        if rel.endswith(".sbatch"):
            assert sbatch_directives_ok(text) == [], rel
            if rel != "launch/train.sbatch":
                assert "--nodes=1" in _directives(text), rel
                assert "torch.distributed.run" not in text, rel
    submit = files["launch/submit.sh"]
    assert 'submit eval --dependency="afterok:${job[train]}:${job[baseline_eval]}" --kill-on-invalid-dep=yes' in submit
    assert "submit validate_data\n" in submit


def test_slurm_resources_follow_inventory_and_launcher():
    files = render(
        make_plan(
            "+goal=tone",
            "inventory=dgx-h100",
            "launcher=slurm",
            "inventory.time_limit_hours=0.5",
            "inventory.account=proj-42",
            "launcher.requeue=0",
            "launcher.cpus_per_task=7",
        ),
        REPORT,
    )
    for rel, text in files.items():
        if rel.endswith(".sbatch"):
            d = _directives(text)
            assert "--time=00:30:00" in d, rel  # 1 h asked, capped by the scheduler's limit
            assert "--account=proj-42" in d and "--partition=gpu" in d, rel
            if rel == "launch/train.sbatch":  # requeues itself at the time limit; no other requeue
                assert "--requeue" in d and "((${SLURM_RESTART_COUNT:-0} - ${planned:-0} > 0))" in text, rel
            else:
                assert "--no-requeue" in d and "SLURM_RESTART_COUNT" not in text, rel
            assert "--cpus-per-task=7" in d, rel
    eval_ = _directives(files["launch/eval.sbatch"])
    assert "--gpus-per-node=1" in eval_ and "--mem=214G" in eval_  # 1 of 8 GPUs: its share of 2 TB, less 10%
    assert not any(d.startswith("--gpus-per-node") for d in _directives(files["launch/gate.sbatch"]))
    requeued = render(make_plan("+goal=tone", "launcher=slurm", "launcher.requeue=2"), REPORT)["launch/train.sbatch"]
    assert "--requeue" in _directives(requeued)
    assert "if ((${SLURM_RESTART_COUNT:-0} - ${planned:-0} > 2)); then" in requeued  # its own requeues aside


def test_cpu_inventory_under_slurm_requests_no_gpus():
    files = render(make_plan(*TINY_LOCAL, "launcher=slurm"), REPORT)
    for rel, text in files.items():
        if rel.endswith(".sbatch"):
            d = _directives(text)
            assert not any(x.startswith(("--gpus", "--partition", "--account")) for x in d), rel
            assert "--mem=0" in d and "--cpus-per-task=2" in d, rel


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "#!/bin/bash\n#SBATCH --nodes=1\nset -e\n#SBATCH --time=01:00:00\n",
            "line 4: #SBATCH after the first command (line 3)",
        ),
        ("#!/bin/bash\n#SBATCH --nodes=1\n  #SBATCH --time=01:00:00\necho\n", "line 3: indented #SBATCH"),
        ("#!/bin/bash\n#SBATCH --job-name=$NAME\necho\n", "line 2: not a literal"),
        ("#!/bin/bash\n#SBATCH --partition='a b'\necho\n", "line 2: not a literal"),
        ("#SBATCH --nodes=1\necho\n", "line 1: no #! interpreter line"),
        ("#!/bin/bash\necho\n", "no #SBATCH lines"),
    ],
    ids=["after-command", "indented", "variable", "quoted", "no-shebang", "none"],
)
def test_sbatch_directives_checker(text, problem):
    problems = sbatch_directives_ok(text)
    assert any(p.startswith(problem) for p in problems), problems


def test_sbatch_directives_checker_accepts_comments_and_blank_lines():
    text = "#!/bin/bash\n# a comment\n\n#SBATCH --nodes=1\n# SBATCH disabled\n#SBATCH --mem=0\nset -e\n"
    assert sbatch_directives_ok(text) == []


def test_multi_node_layout_needs_slurm():
    overrides = [o for o in TWO_NODES if not o.startswith("launcher=")]
    with pytest.raises(ConfigError, match="launcher torchrun runs on one machine, but stage train needs 2 nodes"):
        render(make_plan(*overrides, "launcher=torchrun"), REPORT)


# --- running the scripts with fakes ---------------------------------------------------------------


def test_local_script_runs_stages_in_order_and_stops_at_failure(tmp_path):
    log = tmp_path / "calls"
    python = fake_python(tmp_path / "bin" / "py", log, fail_stage="train")
    plan = make_plan(*TINY_LOCAL, f"launcher.python={python}")
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    result = _run(["bash", str(bundle / "launch/run_local.sh")], cwd=tmp_path)
    assert result.returncode == 1
    assert stages_run(log) == ["validate_data", "baseline_eval", "train"]
    assert "==> stage train failed (exit 1); the stages after it did not run" in result.stderr
    assert calls(log)[0] == [str(python), "-m", "runtime", "plan.json", "--stage", "validate_data"]


def test_launch_streams_and_returns_the_exit_code(tmp_path, capfd):
    log = tmp_path / "calls"
    python = fake_python(tmp_path / "bin" / "py", log)
    plan = make_plan(*TINY_LOCAL, f"launcher.python={python}")
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    assert launch(bundle, plan) == 0
    assert stages_run(log) == [s.name for s in plan.stages]
    out = capfd.readouterr().out
    assert "==> stage validate_data" in out and "==> all 6 stages completed" in out


def test_launch_submits_a_slurm_bundle(tmp_path, capfd, monkeypatch):
    log = tmp_path / "calls"
    bin_dir = fake_slurm_bin(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    plan = make_plan("+goal=tone", "launcher=slurm")
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    assert launch(bundle, plan) == 0
    out = capfd.readouterr().out
    assert out.splitlines() == [f"{s.name} {101 + i}" for i, s in enumerate(plan.stages)]


def test_torchrun_script_runs_distributed_stages_under_torchrun(tmp_path):
    log = tmp_path / "calls"
    python = fake_python(tmp_path / "bin" / "py", log)
    plan = make_plan("+goal=safety_alignment", "launcher=torchrun", f"launcher.python={python}")
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    result = _run(["bash", str(bundle / "launch/run_torchrun.sh")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert stages_run(log) == [s.name for s in plan.stages]
    by_stage = {argv[-1]: argv[1:] for argv in calls(log)}
    assert by_stage["train_sft"][:7] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "8",
    ]
    assert by_stage["gate"] == ["-m", "runtime", "plan.json", "--stage", "gate"]


def test_submit_script_chains_dependencies(tmp_path):
    log = tmp_path / "calls"
    bin_dir = fake_slurm_bin(tmp_path / "bin", log)
    plan = make_plan("+goal=safety_alignment", "launcher=slurm")
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = _run(["bash", str(bundle / "launch/submit.sh")], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    ids = {s.name: str(101 + i) for i, s in enumerate(plan.stages)}
    assert result.stdout.splitlines() == [f"{name} {job}" for name, job in ids.items()]
    assert (bundle / "logs").is_dir()
    assert not any(argv[0] == "scancel" for argv in calls(log))
    for stage, argv in zip(plan.stages, calls(log), strict=True):
        assert argv[:3] == ["sbatch", "--parsable", f"--chdir={bundle.resolve()}"]
        assert argv[-1] == f"launch/{stage.name}.sbatch"
        if stage.after:
            deps = ":".join(ids[a] for a in stage.after)
            assert argv[3:5] == [f"--dependency=afterok:{deps}", "--kill-on-invalid-dep=yes"], argv
        else:
            assert len(argv) == 4, argv


def test_submit_script_cancels_what_it_submitted_when_sbatch_fails(tmp_path):
    log = tmp_path / "calls"
    bin_dir = fake_slurm_bin(tmp_path / "bin", log, fail_after=3)
    plan = make_plan("+goal=safety_alignment", "launcher=slurm")
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = _run(["bash", str(bundle / "launch/submit.sh")], cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert len(result.stdout.splitlines()) == 3
    assert [argv for argv in calls(log) if argv[0] == "scancel"] == [["scancel", "101", "102", "103"]]
    assert "stopped before every stage was submitted; cancelling jobs 101 102 103" in result.stderr


def test_sbatch_scripts_run_their_stage_from_the_submit_dir(tmp_path):
    log = tmp_path / "calls"
    python = fake_python(tmp_path / "bin" / "py", log)
    bin_dir = fake_slurm_bin(tmp_path / "bin", tmp_path / "slurm-calls")
    plan = make_plan(*TWO_NODES, f"launcher.python={python}")
    bundle = write_bundle(render(plan, REPORT), tmp_path / "runs", plan.name)
    spool = tmp_path / "spool"  # sbatch runs a copy of the script from elsewhere
    spool.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_SUBMIT_DIR": str(bundle),
        "SLURM_JOB_NODELIST": "node-[0-1]",
        "SLURM_JOB_ID": "4242",
        "SLURM_RESTART_COUNT": "1",
    }
    for stage in plan.stages:
        copy = shutil.copy(bundle / f"launch/{stage.name}.sbatch", spool / "slurm_script")
        result = _run(["bash", str(copy)], cwd=spool, env=env)
        assert result.returncode == 0, result.stderr
    assert stages_run(log) == [s.name for s in plan.stages]
    train = next(argv for argv in calls(log) if argv[-1] == "train")
    assert train[1:] == [
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "2",
        "--nproc-per-node",
        "8",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "node-0:29500",
        "--rdzv-id",
        "4242",
        "--signals-to-handle",
        "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1",
        "--shutdown-timeout",
        str(plan.stage("train").stop.lead_seconds),  # type: ignore[union-attr]
        "-m",
        "runtime",
        "plan.json",
        "--stage",
        "train",
    ]
    too_many = {**env, "SLURM_RESTART_COUNT": "2"}
    result = _run(["bash", str(bundle / "launch/gate.sbatch")], cwd=spool, env=too_many)
    assert result.returncode == 3 and "requeued 2 times, more than the 1 the plan allows" in result.stderr


# --- hostile values -------------------------------------------------------------------------------

CANARY = "PWNED"
HOSTILE = {
    "spaces": "two  words\tand a tab",
    "single-quote": "it's",
    "double-quote": 'say "hi"',
    "subshell": f"$(touch {CANARY})",
    "backticks": f"`touch {CANARY}`",
    "semicolon": f"x; touch {CANARY}",
    "newline": f"x\ntouch {CANARY}",
    "carriage-return": f"x\rtouch {CANARY}",
    "backslash-newline": f"x\\\ntouch {CANARY}",
    "ifs": f"${{IFS}}touch${{IFS}}{CANARY}",
    "quote-break": f"'; touch {CANARY}; echo '",
    "dquote-break": f'"; touch {CANARY}; echo "',
    "and-comment": f"x && touch {CANARY} #",
    "pipe": f"x | touch {CANARY}",
    "redirect": f"x > {CANARY}",
    "glob": "*",
    "option": "--help",
    "jinja": "{{ 7 * 7 }}{% raw %}",
}
# Where a hostile value goes in the spec (free text); names used as paths are SafeName already.
FREE_TEXT = (
    ("goal", "description"),
    ("data", "description"),
    ("goal", "serving", "server"),
    ("inventory", "gpu", "display_name"),
    ("model", "hf_id"),
)


@functools.cache
def _composed(overrides: tuple[str, ...]) -> Spec:
    return load(list(overrides))[0]


def _hostile_plan(overrides: tuple[str, ...], value: str, python: Path):
    raw = _composed(overrides).model_dump(mode="json")
    for path in FREE_TEXT:
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    raw["launcher"]["python"] = str(python)
    spec = Spec.model_validate(raw)
    return make_plan_from_spec(spec, probe(spec.data, Path.cwd(), token_counter(spec)))


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_values_never_run(value, tmp_path, shellcheck):
    """Render, write and execute every launcher's scripts with the value everywhere free text goes."""
    work = tmp_path / "work"
    work.mkdir()
    log = tmp_path / "calls"
    python = fake_python(tmp_path / "bin" / value.replace("/", "_"), log)  # the interpreter's name is hostile too
    bin_dir = fake_slurm_bin(tmp_path / "slurm-bin", tmp_path / "slurm-calls")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "node-[0-1]",
        "SLURM_JOB_ID": "7",
    }
    scripts, problems = [], []
    for overrides in (TINY_LOCAL, (*TINY_LOCAL, "launcher=torchrun"), TWO_NODES):
        plan = _hostile_plan(overrides, value, python)
        kind = plan.decision.launcher
        files = render(plan, REPORT)
        bundle = write_bundle(files, work, f"{plan.name}-{kind}")
        for rel in _scripts(files):
            scripts.append(str(bundle / rel))
            if _run(["bash", "-n", str(bundle / rel)]).returncode != 0:
                problems.append(f"{rel}: bash -n fails")
            if rel.endswith(".sbatch"):
                problems += [f"{rel}: {p}" for p in sbatch_directives_ok(files[rel])]
        if kind == "slurm":  # submit (fake sbatch), then run each job script as Slurm would (fake srun)
            runs = [bundle / "launch/submit.sh", *(bundle / f"launch/{s.name}.sbatch" for s in plan.stages)]
        else:
            runs = [bundle / f"launch/run_{kind}.sh"]
        before = len(calls(log))
        for script in runs:
            result = _run(["bash", str(script)], cwd=work, env={**env, "SLURM_SUBMIT_DIR": str(bundle)})
            if result.returncode != 0:
                problems.append(f"{script.relative_to(work)} exited {result.returncode}: {result.stderr}")
        recorded = calls(log)[before:]
        if [argv[-1] for argv in recorded] != [s.name for s in plan.stages]:
            problems.append(f"{kind}: stages run {[argv[-1] for argv in recorded]}")
        if any(argv[0] != str(python) for argv in recorded):  # the interpreter arrives as one word, intact
            problems.append(f"{kind}: interpreter mangled: {[argv[0] for argv in recorded]}")
    planted = [*tmp_path.rglob(CANARY), *Path.cwd().glob(CANARY)]
    assert planted == [], f"an injected command ran: {planted}"
    assert problems == []
    # SC2016 says "expressions don't expand in single quotes": for these values, that is the point.
    result = _run([shellcheck, "-S", "style", "--exclude=SC2016", *scripts])
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("value", [v for v in HOSTILE.values() if not re.fullmatch(r"[A-Za-z0-9._-]+", v)])
@pytest.mark.parametrize("key", ["partition", "account"])
def test_hostile_slurm_names_are_rejected_by_the_schema(key, value):
    spec, _ = load(["+goal=tone", "launcher=slurm"])
    raw = spec.model_dump(mode="json")
    raw["inventory"][key] = value
    with pytest.raises(ValidationError, match="String should match pattern"):
        Spec.model_validate(raw)


def test_partition_list_is_accepted():
    files = render(make_plan("+goal=tone", "launcher=slurm", "inventory.partition='gpu,gpu-long'"), REPORT)
    assert "--partition=gpu,gpu-long" in _directives(files["launch/train.sbatch"])


@pytest.mark.parametrize("name", ["HF TOKEN", "X;touch PWNED", "A\nB", "1ABC", ""])
def test_env_passthrough_names_are_validated(name):
    spec, _ = load(["+goal=tone"])
    raw = spec.model_dump(mode="json")
    raw["launcher"]["env_passthrough"] = ["HF_TOKEN", name]
    with pytest.raises(ValidationError, match="String should match pattern"):
        Spec.model_validate(raw)


# --- writing the bundle ---------------------------------------------------------------------------


def test_write_bundle_replaces_atomically_and_leaves_nothing_behind(tmp_path):
    first = write_bundle({"a.txt": "one\n", "launch/x.sh": "#!/bin/sh\n"}, tmp_path, "b")
    (first / "notes.txt").write_text("not compiled: kept (tests/unit/test_bundle.py covers run/ and logs/)")
    second = write_bundle({"a.txt": "two\n"}, tmp_path, "b")
    assert second == first == tmp_path / "b"
    tree = _tree(second)
    assert sorted(tree) == ["a.txt", "notes.txt"] and tree["a.txt"] == (b"two\n", 0o644)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    assert sorted(p.name for p in second.iterdir()) == ["a.txt", "notes.txt"]  # no stale launch/, no temp files


@pytest.mark.parametrize("rel", ["/etc/passwd", "../escape", "a/../../b", ""])
def test_write_bundle_refuses_paths_outside(rel, tmp_path):
    with pytest.raises(ValueError, match="must be relative"):
        write_bundle({rel: "x"}, tmp_path, "b")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["..", "a/b", "", ".hidden"])
def test_write_bundle_refuses_unsafe_names(name, tmp_path):
    with pytest.raises(ValueError, match="not a safe folder name"):
        write_bundle({"a": "x"}, tmp_path, name)
