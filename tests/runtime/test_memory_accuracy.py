"""The plan's memory holds within 10% of what the train stage measures (docs/estimator.md 2.14): the small end of
benchmarks/memory_accuracy.py, run as a user runs it. A random-initialised ~20M-parameter Llama (bf16 safetensors and
the tokenizer runtime.tiny trains) is planned with model=local on the CPU inventory, LoRA and full SFT at micro batch
4, and its train stage runs 3 steps on the tone data; status.json's peak RSS over the plan's estimate must lie in
0.90-1.10, and the widest batch the runtime trained must be no wider than the one the plan priced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_stage_peak_within_ten_percent_of_the_plan(tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "memory_accuracy.py"),
            "--only",
            "s20m-lora-4,s20m-sft-4",
            "--steps",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.is_file(), done.stdout[-2000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["case"] for r in rows] == ["s20m-lora-4", "s20m-sft-4"]
    for r in rows:
        assert 0.90 <= r["ratio"] <= 1.10, f"{r['case']}: peak {r['peak']:,} / estimate {r['estimate']:,}"
        assert 0 < r["widest"] <= r["planned_widest"], r
