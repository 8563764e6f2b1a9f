"""planner.diff against a real git history: a temporary repository holding a copy of conf/, with
one commit per reviewed change, diffed as a pull request would be.

Goldens (text and markdown) live in tests/golden/diff/; regenerate and review with

    UPDATE_GOLDENS=1 python -m pytest tests/unit/test_diff.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest import param

from planner.bundle import write_bundle
from planner.diff import (
    Locator,
    Options,
    Result,
    as_annotations,
    as_json,
    compare,
    find_default,
    find_key,
    main,
    markdown,
    parse_args,
    run,
    text,
)
from planner.diff_format import serving
from planner.diff_records import ABSENT, Source
from planner.paths import conf_dir
from planner.render import render
from schemas.plan import ServingPlan
from tests.unit.helpers import make_plan

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "diff"
UPDATE = os.environ.get("UPDATE_GOLDENS", "") == "1"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.run(
        ["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _edit(path: Path, old: str, new: str) -> None:
    text_ = path.read_text()
    assert old in text_, f"{old!r} not in {path}"
    path.write_text(text_.replace(old, new))


def _reformat(repo: Path) -> None:
    """Comments, spacing and key order only: the composed config is the same."""
    _edit(repo / "conf/goal/tone.yaml", "  gpu_hour_budget: 4\n", "  gpu_hour_budget: 4.0   # GPU-hours\n")
    _edit(
        repo / "conf/goal/tone.yaml",
        "  metric: rouge_l\n  baseline_score: 0.42",
        "  baseline_score: 0.42\n  metric:    rouge_l",
    )
    _edit(repo / "conf/method/lora.yaml", "learning_rate: 1.0e-4", "learning_rate: 0.0001   # the seed's default")
    with open(repo / "conf/inventory/dgx-h100.yaml", "a") as handle:
        handle.write("\n# a trailing comment\n")


def _shrink_samples(repo: Path) -> None:
    path = repo / "conf/samples/tone/training/tone.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:150]))


def _goals_added_removed(repo: Path) -> None:
    (repo / "conf/goal/product_knowledge.yaml").unlink()
    copy = (repo / "conf/goal/tone.yaml").read_text().replace("name: tone\n", "name: tone_copy\n")
    (repo / "conf/goal/tone_copy.yaml").write_text(copy)


# tag -> how its commit changes conf/ (each on a branch from `base`)
COMMITS = {
    "rank": lambda r: _edit(r / "conf/method/lora.yaml", "adapter_dim: 8", "adapter_dim: 16"),
    "tone-70b": lambda r: _edit(r / "conf/goal/tone.yaml", "llama-3.1-8b-instruct", "llama-3.1-70b-instruct"),
    "shrink": lambda r: _edit(r / "conf/inventory/dgx-h100.yaml", "gpus_per_node: 8", "gpus_per_node: 2"),
    "lr": lambda r: _edit(r / "conf/method/lora.yaml", "learning_rate: 1.0e-4", "learning_rate: 1.0e-3"),
    "format": _reformat,
    "samples": _shrink_samples,
    "goals": _goals_added_removed,
    "broken": lambda r: _edit(r / "conf/goal/tone.yaml", "  gap: style\n", "  gap: style\n  gpu_budget: 4\n"),
}

# golden case -> (head tag, extra arguments, exit code)
CASES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "lora-rank": ("rank", ("goals=tone", "method=lora"), 1),
    "tone-8b-to-70b": ("tone-70b", (), 1),
    "inventory-shrink": ("shrink", ("goals=safety_alignment,tone",), 1),
    "learning-rate": ("lr", ("goals=tone", "method=lora"), 1),
    "formatting-only": ("format", (), 0),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diff-repo")
    shutil.copytree(conf_dir(), root / "conf", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "base")
    _git(root, "tag", "base")
    for tag, change in COMMITS.items():
        _git(root, "checkout", "-q", "-b", f"pr-{tag}", "base")
        change(root)
        _git(root, "commit", "-q", "-a", "-m", tag)
        _git(root, "add", "-A")  # new files (goals)
        if _git(root, "status", "--porcelain").strip():
            _git(root, "commit", "-q", "-m", f"{tag} (new files)")
        _git(root, "tag", tag)
    _git(root, "checkout", "-q", "main")
    return root


@pytest.fixture(scope="module")
def results(repo, tmp_path_factory):
    """Each golden case diffed once (text, markdown, JSON and annotations come from one result)."""
    cache: dict = {}

    def get(case: str):
        if case not in cache:
            tag, extra, _ = CASES[case]
            options = parse_args(["--base", "base", "--head", tag, "--repo", str(repo), *extra])
            cache[case] = run(options, tmp_path_factory.mktemp(case))
        return cache[case]

    return get


def _diff(repo: Path, tmp_path: Path, *args: str):
    return run(parse_args([*args, "--repo", str(repo)]), tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_diff_matches_golden(case, results):
    result = results(case)
    assert result.exit_code == CASES[case][2], text(result)
    outputs = {f"{case}.txt": text(result), f"{case}.md": markdown(result)}
    for name, out in outputs.items():
        path = GOLDEN / name
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(out.encode())
        assert path.is_file(), f"no golden {name}: run UPDATE_GOLDENS=1 pytest {Path(__file__).name}"
        assert path.read_bytes().decode() == out, f"{name} changed: regenerate with UPDATE_GOLDENS=1 and review"


def test_golden_folder_holds_only_the_cases():
    names = sorted(p.name for p in GOLDEN.iterdir())
    assert names == sorted(f"{c}.{ext}" for c in CASES for ext in ("md", "txt")) or UPDATE


def test_model_8b_to_70b(results):
    result = results("tone-8b-to-70b")
    by_goal = {g.goal: g for g in result.goals}
    assert len(by_goal) == 7 and by_goal["tone"].status == "changed"
    assert all(g.status == "unchanged" for name, g in by_goal.items() if name != "tone")
    assert by_goal["tone"].summary.startswith("tone: GPUs 1 -> 4, GPU-hours ")
    assert [r.kind for r in result.risks] == ["cost"]
    assert {c.key for c in by_goal["tone"].config if not c.under} == {"model.name"}
    assert "launch/train.sbatch" in by_goal["tone"].launch
    assert "+#SBATCH --gpus-per-node=4" in by_goal["tone"].launch["launch/train.sbatch"]
    md = markdown(result)
    assert md.index("- **tone**: GPUs 1 -> 4") < md.index("<details>")  # the summary stays outside the folds


def test_lora_rank_and_learning_rate(results):
    rank = results("lora-rank").goals[0]
    assert [(c.key, c.base, c.head) for c in rank.config] == [("method.lora.adapter_dim", 8, 16)]
    assert {c.key for c in rank.areas["memory"]} >= {"adapters", "total"}
    assert [(c.key, c.base, c.head) for c in rank.areas["recipe"]] == [
        ("train.lora.adapter_dim", 8, 16),
        ("train.lora.alpha", 8, 16),
    ]
    lr = results("learning-rate").goals[0]
    assert [f.code for f in lr.added] == ["lint-lora-lr"] and lr.removed == []
    assert not results("learning-rate").risks  # a warning, not an error: no risk flag
    assert ("train.learning_rate", 0.0001, 0.001) in [(c.key, c.base, c.head) for c in lr.areas["recipe"]]
    assert lr.summary.startswith("tone: train.learning_rate 0.0001 -> 0.001")


def test_learning_rate_change_names_the_stage_and_both_values(results):
    result = results("learning-rate")
    out = text(result)
    recipe = out[out.index("\nrecipe:\n") :]
    assert "\n  train: learning_rate 0.0001 -> 0.001\n" in recipe
    md = markdown(result)
    assert "| `train` | `learning_rate` | 0.0001 | 0.001 |" in md
    assert "| **recipe** | train: lora lr 0.0001, 10 epochs | train: lora lr 0.001, 10 epochs |" in md
    doc = json.loads(as_json(result))
    assert {"key": "train.learning_rate", "base": 0.0001, "head": 0.001} in doc["goals"][0]["areas"]["recipe"]


def test_recipe_changes_per_stage_and_a_stage_removed(tmp_path):
    """A DPO pipeline given an SFT base loses its train_sft stage; the DPO stage's epochs move."""
    tiny = ("+goal=safety_alignment", "model=tiny-llama", "inventory=local")
    base = make_plan(*tiny)
    head = make_plan(*tiny, "method.sft_base=org/some-sft-model", "method.epochs=3")
    epochs = base.stage("train_sft").method.epochs
    diff = compare("safety_alignment", base, head, Options(base="a", head="b"), {}, Locator())
    changes = {c.key: (c.base, c.head) for c in diff.areas["recipe"]}
    assert changes["train.epochs"] == (1, 3)
    assert changes["train_sft"][1] is ABSENT and changes["train_sft"][0]["epochs"] == epochs
    out = text(Result(Options(base="a", head="b"), Source("a", "plan", "a"), Source("b", "plan", "b"), [diff]))
    assert "  train: epochs 1 -> 3\n" in out
    assert f"  train_sft: removed (was sft, learning_rate 0.0003, epochs {epochs}, batch_size 8)\n" in out
    back = compare("safety_alignment", head, base, Options(base="b", head="a"), {}, Locator())
    md = markdown(Result(Options(base="b", head="a"), Source("b", "plan", "b"), Source("a", "plan", "a"), [back]))
    assert f"| `train_sft` | (stage) | (absent) | sft, learning_rate 0.0003, epochs {epochs}, batch_size 8 |" in md
    assert "| `train` | `epochs` | 3 | 1 |" in md


def test_shrunk_inventory_is_infeasible(results):
    result = results("inventory-shrink")
    safety = next(g for g in result.goals if g.goal == "safety_alignment")
    assert "feasible -> not feasible (1 error)" in safety.summary
    assert [r.kind for r in result.risks] == ["new-error"]
    assert any(f.code == "layout-inventory-gpus" and f.severity == "error" for f in safety.added)


def test_formatting_only_is_no_change(results):
    result = results("formatting-only")
    assert result.exit_code == 0
    assert all(g.summary.endswith(": no change") for g in result.goals) and len(result.goals) == 7


def test_annotations_point_at_the_changed_line(results, repo):
    lines = as_annotations(results("inventory-shrink")).splitlines()
    number = (repo / "conf/inventory/dgx-h100.yaml").read_text().splitlines().index("gpus_per_node: 8") + 1
    assert lines == [line for line in lines if line.startswith("::")]
    assert any(
        line.startswith(
            f"::error file=conf/inventory/dgx-h100.yaml,line={number},title=plan diff%3A "
            "safety_alignment%3A layout-inventory-gpus::"
        )
        for line in lines
    )
    lr = as_annotations(results("learning-rate"))
    number = (repo / "conf/method/lora.yaml").read_text().splitlines().index("learning_rate: 1.0e-4") + 1
    assert lr.startswith(
        f"::warning file=conf/method/lora.yaml,line={number},title=plan diff%3A tone%3A lint-lora-lr::"
    )
    tone = (repo / "conf/goal/tone.yaml").read_text().splitlines()
    number = next(i for i, ln in enumerate(tone, 1) if "override /model" in ln)
    assert f"::warning file=conf/goal/tone.yaml,line={number},title=plan risk%3A tone%3A cost::" in as_annotations(
        results("tone-8b-to-70b")
    )


def test_json_report(results):
    doc = json.loads(as_json(results("tone-8b-to-70b")))
    assert doc["exit_code"] == 1 and doc["plan_changed"] and doc["base"]["kind"] == "git"
    assert len(doc["base"]["commit"]) == 40
    tone = next(g for g in doc["goals"] if g["goal"] == "tone")
    assert tone["base"]["gpus"] == 1 and tone["head"]["gpus"] == 4
    model_keys = [c for c in tone["config"] if c.get("under") == "model"]
    assert len(model_keys) >= 8  # every key of the swapped catalog entry, folded in text and markdown
    assert {"decision", "layout", "memory", "estimate", "stages"} <= set(tone["areas"])


def test_markdown_truncates_with_a_notice(results):
    result = results("inventory-shrink")
    full = markdown(result)
    assert len(full) > 4000
    for limit in (4000, 1500, 600):
        short = markdown(result, limit=limit)
        assert len(short) <= limit and "Truncated" in short
        assert short.startswith("<!-- planner-diff -->\n## Plan diff: `base` → `shrink`")
    assert "- **safety_alignment**: feasible -> not feasible" in markdown(result, limit=1500)


def test_builtin_samples_are_read_from_the_revision(repo, tmp_path):
    result = _diff(repo, tmp_path, "--base", "base", "--head", "samples", "goals=tone")
    tone = result.goals[0]
    records = {c.key: (c.base, c.head) for c in tone.areas["data"]}
    assert records["training.records"] == (400, 150)
    assert tone.config == [] and tone.status == "changed"  # same spec, other data: the estimate moves


def test_goals_added_and_removed(repo, tmp_path):
    result = _diff(repo, tmp_path, "--base", "base", "--head", "goals", "goals=tone_copy,product_knowledge")
    status = {g.goal: g.status for g in result.goals}
    assert status == {"tone_copy": "added", "product_knowledge": "removed"}
    assert result.exit_code == 1
    assert result.goals[0].summary.startswith("tone_copy: added: method lora, GPUs 1")


def test_bad_config_at_head_exits_2_with_the_message(repo, capsys):
    code = main(["--base", "base", "--head", "broken", "--repo", str(repo), "goals=tone,domain_shift"])
    out = capsys.readouterr()
    assert code == 2
    assert "tone: error at head: invalid configuration: 1 problem (goal.gpu_budget: unknown key." in out.out
    assert "domain_shift: no change" in out.out
    assert "goal.gpu_budget" in out.err and "Traceback" not in out.err


def test_fail_on_risk_exits_3(repo, capsys):
    args = ["--base", "base", "--head", "shrink", "--repo", str(repo), "goals=safety_alignment"]
    assert main([*args, "report=json"]) == 1
    assert main([*args, "fail_on_risk=true", "report=json"]) == 3
    assert (
        main(
            [
                "--base",
                "base",
                "--head",
                "tone-70b",
                "--repo",
                str(repo),
                "goals=tone",
                "fail_on_risk=true",
                "risk_cost_ratio=10",
                "report=json",
            ]
        )
        == 1
    )  # +5x is under a 10x threshold
    capsys.readouterr()


def test_plan_files_and_bundles(repo, tmp_path, capsys):
    small, large = make_plan("+goal=tone"), make_plan("+goal=tone", "model=llama-3.1-70b-instruct")
    bundle = write_bundle(render(small, "# report\n"), tmp_path / "runs", small.name)
    plan_json = tmp_path / "large.json"
    plan_json.write_text(large.model_dump_json(indent=2))

    def diff(*args: str) -> tuple[int, str]:
        code = main([*args, "--repo", str(repo)])
        return code, capsys.readouterr().out

    code, out = diff("--base", str(bundle), "--head", str(plan_json))
    assert code == 1 and "tone: GPUs 1 -> 4" in out
    assert diff("--base", str(bundle), "--head", str(bundle / "plan.json"))[0] == 0
    code, out = diff("--base", str(bundle), "--head", "base")  # the same conf/ and samples, as a git revision
    assert code == 0 and out.splitlines()[-1] == "  tone: no change"
    code, out = diff("--base", str(plan_json), "--head", str(repo / "conf"), "report=markdown")
    assert code == 1 and "- **tone**: GPUs 4 -> 1" in out


def test_working_tree_folder_against_a_revision(repo, tmp_path):
    result = _diff(repo, tmp_path, "--base", "base", "--head", str(repo), "goals=tone")
    assert result.exit_code == 0 and result.head.kind == "folder"


def test_identical_revisions_plan_each_goal_once(repo, tmp_path, monkeypatch):
    import planner.diff as diff_mod

    calls = []
    real = diff_mod.plan_goal

    def counting(source, goal, overrides, cache):
        key = (source.key, goal, tuple(overrides))
        if key not in cache:
            calls.append(goal)
        return real(source, goal, overrides, cache)

    monkeypatch.setattr(diff_mod, "plan_goal", counting)
    result = _diff(repo, tmp_path, "--base", "base", "--head", "main")
    assert result.exit_code == 0 and len(calls) == len(result.goals) == 7


@pytest.mark.parametrize(
    "args, match",
    [
        param(["--head", "HEAD"], "missing --base", id="no-base"),
        param(["--base", "HEAD", "--head", "HEAD", "report=html"], "unknown report 'html'", id="report"),
        param(
            ["--base", "HEAD", "--head", "HEAD", "fail_on_risk=maybe"],
            "fail_on_risk must be true or false",
            id="fail-on-risk",
        ),
        param(
            ["--base", "HEAD", "--head", "HEAD", "risk_cost_ratio=0"], "risk_cost_ratio must be a positive", id="ratio"
        ),
        param(["--base", "HEAD", "--head", "HEAD", "--verbose"], "unknown option '--verbose'", id="flag"),
        param(["--base"], "--base needs a value", id="flag-value"),
    ],
)
def test_bad_arguments(args, match, capsys):
    assert main(args) == 2
    assert re.search(re.escape(match), capsys.readouterr().err)


def test_bad_revision_and_goal(repo, capsys):
    assert main(["--base", "no-such-rev", "--head", "base", "--repo", str(repo)]) == 2
    assert "unknown git revision 'no-such-rev'" in capsys.readouterr().err
    assert main(["--base", "base", "--head", "base", "--repo", str(repo), "goals=tonee"]) == 2
    assert "unknown goal 'tonee'. Did you mean 'tone'?" in capsys.readouterr().err


def _serving(plan, kind: str):
    """The plan with decision.serving set to `kind` and no consequence-serving finding left to read."""
    return plan.model_copy(
        update={
            "decision": plan.decision.model_copy(update={"serving": ServingPlan(kind=kind, reason="test")}),
            "findings": tuple(f for f in plan.findings if f.code != "consequence-serving"),
        }
    )


def test_serving_and_memory_risks():
    lora, sft = make_plan("+goal=tone"), make_plan("+goal=tone", "method=sft")
    assert (lora.decision.serving.kind, sft.decision.serving.kind) == ("hot_swap", "new_deployment")
    diff = compare("tone", lora, sft, Options(base="a", head="b"), {}, Locator())
    assert "serving" in [r.kind for r in diff.risks]
    assert next(r for r in diff.risks if r.kind == "serving").message.startswith(
        "needs a new serving deployment (was a hot-swapped LoRA adapter)"
    )
    assert (serving(lora), serving(sft)) == ("hot-swap", "new deployment")
    # the rule reads the typed decision.serving, not a finding's message
    typed = compare(
        "tone", _serving(lora, "hot_swap"), _serving(sft, "new_deployment"), Options(base="a", head="b"), {}, Locator()
    )
    assert "serving" in [r.kind for r in typed.risks]
    assert "serving" not in [
        r.kind
        for r in compare("tone", lora, _serving(sft, "hot_swap"), Options(base="a", head="b"), {}, Locator()).risks
    ]
    untrained = compare(
        "tone", _serving(lora, "none"), _serving(lora, "new_deployment"), Options(base="a", head="b"), {}, Locator()
    )
    assert [r.message for r in untrained.risks if r.kind == "serving"] == [
        "needs a new serving deployment (was no trained model): all weights change"
    ]
    assert serving(_serving(lora, "none")) == "none"
    assert diff.summary.startswith("tone: method lora -> sft, GPUs 1 -> 8")
    mem = lora.estimate.memory_per_gpu_bytes
    assert mem is not None
    tight = lora.model_copy(
        update={
            "estimate": lora.estimate.model_copy(
                update={"memory_per_gpu_bytes": mem.model_copy(update={"total": int(mem.capacity * 0.95)})}
            )
        }
    )
    kinds = [r.kind for r in compare("tone", lora, tight, Options(base="a", head="b"), {}, Locator()).risks]
    assert kinds == ["memory"]
    assert compare("tone", tight, tight, Options(base="a", head="b"), {}, Locator()).risks == []


@pytest.mark.parametrize(
    "yaml_text, parts, expected",
    [
        param("a:\n  b:\n    c: 1\n", ["a", "b", "c"], (3, 3), id="nested"),
        param("a:\n  x: 1\nb:\n  c: 2\n", ["b", "c"], (4, 2), id="sibling"),
        param("# c: 0\na:\n  c: 1\n", ["a", "c"], (3, 2), id="comment"),
        param("a:\n  b: 1\n", ["a", "z"], (1, 1), id="partial"),
        param("x: 1\n", ["a"], None, id="absent"),
    ],
)
def test_find_key(yaml_text, parts, expected):
    assert find_key(yaml_text, parts) == expected


def test_find_default():
    text_ = "defaults:\n  - override /model: m\n  - /gpu@gpu: h100-sxm\n  - inventory: x\n"
    assert (find_default(text_, "model"), find_default(text_, "gpu"), find_default(text_, "inventory")) == (2, 3, 4)


def test_cli_acceptance_flow(repo, tmp_path):
    """What the project's acceptance check runs: HEAD against itself, then a commit moving tone to 70B."""
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def diff(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "planner.diff", *args],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    same = diff("--base", "HEAD", "--head", "HEAD")
    assert same.returncode == 0, same.stderr
    _edit(clone / "conf/goal/tone.yaml", "llama-3.1-8b-instruct", "llama-3.1-70b-instruct")
    _git(clone, "commit", "-q", "-a", "-m", "tone: 70B")
    moved = diff("--base", "HEAD~1", "--head", "HEAD", "report=markdown")
    assert moved.returncode == 1, moved.stderr
    assert "GPUs 1 -> 4" in moved.stdout and "Traceback" not in moved.stderr
    bad = diff("--base", "HEAD~5", "--head", "HEAD")
    assert bad.returncode == 2 and "unknown git revision 'HEAD~5'" in bad.stderr and "Traceback" not in bad.stderr
    assert _git(clone, "status", "--porcelain") == ""  # the working tree is never touched


def test_import_is_light():
    code = (
        "import sys, planner.diff; print(sorted(m for m in ('torch','transformers','peft','trl') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout.strip() == "[]", proc.stderr
