"""Memory accuracy: measured peak / planned estimate for LoRA and full SFT at several micro batches, on CPU.

Each case is a random-initialised model of a catalog shape (scaled down in layers to --budget-gb), trained a few
steps through transformers' Trainer in its own process (runtime.calibrate), its peak RSS beside the estimator's
uncalibrated total for exactly that case (planner.calibrate compiles both). Cases run one at a time, interleaved
over the models, methods and micro batches. The bound the planner promises: 0.90 <= measured / estimate <= 1.10.

    python benchmarks/memory_accuracy.py [--models tiny-llama,llama-3.2-1b-instruct] [--micro-batches 1,4,8,16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner import calibrate  # noqa: E402

LOW, HIGH = 0.90, 1.10


def run(models: list[str], methods: str, micro_batches: str, seq: int, steps: int, budget_gb: float) -> list[dict]:
    rows = []
    for model in models:
        keys = {
            **calibrate.DEFAULTS,
            "inventory": "local",
            "model": model,
            "methods": methods,
            "micro_batches": micro_batches,
            "seq": str(seq),
            "steps": str(steps),
            "budget_gb": str(budget_gb),
        }
        compiled = calibrate.cases(keys, [])
        with tempfile.TemporaryDirectory() as tmp:
            cases_file, out = Path(tmp) / "cases.json", Path(tmp) / "measured.json"
            for i, case in enumerate(compiled["cases"]):
                cases_file.write_text(json.dumps(compiled))
                subprocess.run(
                    [sys.executable, "-m", "runtime.calibrate", str(cases_file), "--out", str(out), "--case", str(i)],
                    check=True,
                    cwd=ROOT,
                )
                r = json.loads(out.read_text())
                ratio = r["peak"] / case["estimate"]["total"]
                rows.append(
                    {
                        "case": case["case"],
                        "model": case["model"],
                        "peak": r["peak"],
                        "estimate": case["estimate"]["total"],
                        "ratio": ratio,
                    }
                )
                flag = "ok" if LOW <= ratio <= HIGH else "OUT"
                print(
                    f"{case['model']:<42} {case['case']:<9} peak {r['peak'] / 1e9:6.3f} GB  estimate "
                    f"{case['estimate']['total'] / 1e9:6.3f} GB  measured/estimate {ratio:.2f}  {flag}",
                    flush=True,
                )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny-llama,qwen2.5-0.5b-instruct,llama-3.2-1b-instruct")
    ap.add_argument("--methods", default="lora,sft")
    ap.add_argument("--micro-batches", default="1,4,8,16")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--budget-gb", type=float, default=4.0)
    a = ap.parse_args()
    rows = run(a.models.split(","), a.methods, a.micro_batches, a.seq, a.steps, a.budget_gb)
    inside = sum(LOW <= r["ratio"] <= HIGH for r in rows)
    print(f"{inside} of {len(rows)} cases within {LOW:.2f}-{HIGH:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
