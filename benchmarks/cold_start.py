"""Cold start: `python -m planner +goal=tone dry_run=true report=json` against a bare @hydra.main app.

Both compose the same conf/; runs are interleaved and the median ratio is printed (target <= 1.3, issue [3/7]).
Also the in-process time of compose + validate + plan for every goal.

    python benchmarks/cold_start.py [--runs 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE = """
import hydra
from omegaconf import OmegaConf

@hydra.main(version_base="1.3", config_path={conf!r}, config_name="config")
def main(cfg):
    print(OmegaConf.to_yaml(cfg)[:10])

main()
"""


def _time(cmd: list[str], cwd: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed: {proc.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    from planner.paths import conf_dir

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE.format(conf=str(conf_dir())))
        ours_cmd = [sys.executable, "-m", "planner", "+goal=tone", "dry_run=true", "report=json"]
        bare_cmd = [sys.executable, str(bare), "+goal=tone", "hydra.run.dir=.", "hydra.output_subdir=null",
                    "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
        _time(ours_cmd, tmp, env), _time(bare_cmd, tmp, env)  # warm the page cache
        ours, base = [], []
        for _ in range(args.runs):
            ours.append(_time(ours_cmd, tmp, env))
            base.append(_time(bare_cmd, tmp, env))
    a, b = statistics.median(ours), statistics.median(base)
    print(f"cold start (median of {args.runs}, interleaved)")
    print(f"  planner dry run   {a:6.3f} s")
    print(f"  bare @hydra.main  {b:6.3f} s")
    print(f"  ratio             {a / b:6.2f}x   (target <= 1.30)")

    from planner.compose import load
    from planner.core import plan
    from planner.paths import group_options
    from planner.probe import probe

    print("\nin process, per goal (compose + validate | probe | plan), ms:")
    for goal in group_options("goal"):
        t0 = time.perf_counter()
        spec, _ = load([f"+goal={goal}"])
        t1 = time.perf_counter()
        stats = probe(spec.data, Path.cwd())
        t2 = time.perf_counter()
        plan(spec, stats)
        t3 = time.perf_counter()
        print(f"  {goal:22} {1000 * (t1 - t0):7.1f} {1000 * (t2 - t1):7.1f} {1000 * (t3 - t2):7.1f}")


if __name__ == "__main__":
    main()
