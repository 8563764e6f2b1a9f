"""Latency of the job service's dry run, `POST /v1/plans`, on a real server: median and p95 over N requests.

Starts `python -m planner.serve` on a free port with a fresh data folder and a datasets root holding the tone
sample as default/email-assist, sends Customizer's tutorial body (tiny-llama, SFT LoRA) N times one after the
other over one keep-alive connection (after a few warm-up requests: the first composes the config groups), and
prints the latencies. Each request composes, validates, probes the dataset (reads and hashes its files), plans
and serialises the plan.

    python benchmarks/service_plans.py [--requests 200] [--warmup 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BODY = {
    "config": "local/tiny-llama@v1.0.0+CPU",
    "dataset": {"name": "email-assist", "namespace": "default"},
    "hyperparameters": {
        "training_type": "sft",
        "finetuning_type": "lora",
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 0.0001,
        "lora": {"adapter_dim": 8, "adapter_dropout": 0.1},
    },
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plans-bench-") as tmp:
        datasets = Path(tmp) / "datasets"
        shutil.copytree(ROOT / "conf" / "samples" / "tone", datasets / "default" / "email-assist")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LADDER_API_TOKEN", "DATABASE_URL"))}
        env["LADDER_HOME"] = str(Path(tmp) / "home")
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "planner.serve",
                "--port",
                str(port),
                "--datasets-root",
                str(datasets),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=60) as client:
                for _ in range(600):
                    try:
                        client.get("/v1/customization/configs")
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                for _ in range(args.warmup):
                    client.post("/v1/plans", json=BODY).raise_for_status()
                times = []
                for _ in range(args.requests):
                    start = time.perf_counter()
                    reply = client.post("/v1/plans", json=BODY)
                    times.append(time.perf_counter() - start)
                    reply.raise_for_status()
                    assert reply.json()["feasible"] is True
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    times.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    print(
        f"POST /v1/plans over {len(times)} requests: median {statistics.median(times) * 1000:.1f} ms, "
        f"p95 {p95 * 1000:.1f} ms, min {times[0] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms "
        f"({os.cpu_count()} CPUs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
