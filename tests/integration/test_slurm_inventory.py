"""Inventories from the real local cluster (.ci/slurm-up.sh), and compiled GPU scripts against it.

* `python -m planner.inventory --from-slurm` reads the cluster: partition debug (the default, the node that runs
  jobs) and partition gpu (that node and a second one without slurmd), 8 fake H100 each.
* The inventory it writes plans a goal through `hydra.searchpath`, as a team would use it.
* Every shipped goal on every shipped Slurm inventory, with the CPUs and memory of this cluster's nodes (read
  with --from-slurm: the shipped ones describe DGX-class hosts), compiles to scripts that a real
  `sbatch --test-only` accepts: `--gpus-per-node`, `--nodes=2`, `--partition=gpu` and all.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from planner.bundle import write_bundle
from planner.paths import conf_dir
from planner.render import render
from tests.unit.helpers import make_plan

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GOALS = sorted(p.stem for p in (conf_dir() / "goal").glob("*.yaml"))
SLURM_INVENTORIES = sorted(
    p.stem for p in (conf_dir() / "inventory").glob("*.yaml") if yaml.safe_load(p.read_text())["scheduler"] == "slurm"
)
REPORT = "# report\n"


def _run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env)


def _from_slurm(*args: str) -> subprocess.CompletedProcess:
    return _run(sys.executable, "-m", "planner.inventory", "--from-slurm", *args, cwd=ROOT)


@pytest.fixture(scope="module")
def team_conf(slurm_cluster, tmp_path_factory) -> Path:
    """A team's config folder holding inventory/ci-gpu.yaml, written by --from-slurm from partition gpu."""
    root = tmp_path_factory.mktemp("team-conf")
    result = _from_slurm("--partition", "gpu", "--name", "ci-gpu", "-o", str(root / "inventory" / "ci-gpu.yaml"))
    if result.returncode == 2 and "no partition 'gpu'" in result.stderr:
        pytest.skip(f"this Slurm cluster has no partition gpu: run sudo .ci/slurm-up.sh ({result.stderr.strip()})")
    assert result.returncode == 0, result.stderr
    return root


def _inventory(team_conf: Path) -> dict:
    return yaml.safe_load((team_conf / "inventory" / "ci-gpu.yaml").read_text())


def test_from_slurm_reads_both_partitions(team_conf):
    written = _inventory(team_conf)
    assert written["defaults"] == [{"/gpu@gpu": "h100-sxm"}, "_self_"]  # GRES type h100, through conf/slurm_gres.yaml
    assert (written["nodes"], written["gpus_per_node"], written["partition"]) == (2, 8, "gpu")
    assert written["cpus_per_node"] == os.cpu_count()
    mem_total_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    )
    assert 0 < written["memory_per_node_gb"] < mem_total_kb * 1024 / 1e9  # slurm-up's RealMemory: less than there is
    assert (written["scheduler"], written["time_limit_hours"]) == ("slurm", None)

    default = _from_slurm()  # no --partition: the default one, stdout
    assert default.returncode == 0, default.stderr
    assert "Traceback" not in default.stderr
    debug = yaml.safe_load(default.stdout)
    assert (debug["name"], debug["nodes"], debug["gpus_per_node"], debug["partition"]) == ("slurm-debug", 1, 8, "debug")


def test_from_slurm_names_the_partitions_when_one_is_unknown(slurm_cluster):
    result = _from_slurm("--partition", "no-such-partition")
    assert result.returncode == 2
    assert "error: no partition 'no-such-partition' in sinfo" in result.stderr
    assert "debug" in result.stderr and "gpu" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_generated_inventory_plans_a_goal(team_conf):
    result = _run(
        sys.executable, "-m", "planner", "+goal=tone", "inventory=ci-gpu", f"hydra.searchpath=[file://{team_conf}]",
        "dry_run=true", cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "inventory ci-gpu (2 x 8 H100 SXM 80GB)" in " ".join(result.stdout.split())


def test_sbatch_test_only_accepts_every_gpu_script_of_every_slurm_inventory(team_conf, tmp_path):
    ci = _inventory(team_conf)
    assert len(GOALS) >= 7 and len(SLURM_INVENTORIES) >= 4, (GOALS, SLURM_INVENTORIES)
    host = [
        f"inventory.cpus_per_node={ci['cpus_per_node']}",
        f"inventory.memory_per_node_gb={ci['memory_per_node_gb']}",
    ]
    checked, gpu_scripts, multi_node, skipped = [], [], [], []
    for inventory in SLURM_INVENTORIES:
        for goal in GOALS:
            plan = make_plan(f"+goal={goal}", f"inventory={inventory}", "launcher=slurm", *host)
            if not plan.feasible:  # the CLI compiles no scripts for it; not this host's CPUs or memory either
                assert not make_plan(f"+goal={goal}", f"inventory={inventory}", "launcher=slurm").feasible
                skipped.append(f"{inventory}/{goal}")
                continue
            bundle = write_bundle(render(plan, REPORT), tmp_path / inventory, plan.name)
            (bundle / "logs").mkdir()
            for script in sorted((bundle / "launch").glob("*.sbatch")):
                text = script.read_text()
                result = _run("sbatch", "--test-only", f"--chdir={bundle}", str(script), cwd=bundle, timeout=30)
                case = f"{inventory}/{goal}/{script.name}"
                assert result.returncode == 0, f"{case}: {result.stderr}\n{text}"
                assert "to start at" in result.stderr, f"{case}: {result.stderr}"
                checked.append(case)
                if "#SBATCH --gpus-per-node=" in text:
                    gpu_scripts.append(case)
                    assert "#SBATCH --partition=gpu\n" in text, case
                if "#SBATCH --nodes=2\n" in text:
                    multi_node.append(case)
                    nodes = re.search(r"on nodes (\S+)", result.stderr)
                    assert nodes and re.search(r"[,\[]", nodes.group(1)), f"{case}: not 2 nodes: {result.stderr}"
    print(f"sbatch --test-only: {len(checked)} scripts, {len(gpu_scripts)} with GPUs, {len(multi_node)} on 2 nodes; "
          f"not feasible, not compiled: {skipped}")  # fmt: skip
    assert len(gpu_scripts) >= 20, gpu_scripts
    assert multi_node, "no 2-node script: h100-2node should give one"
