"""python -m planner.calibrate inventory=<name> [model=<catalog name>] [out_dir=<folder>] [key=value ...]

Measures the estimator against the device of an inventory and writes a calibration file that the planner reads
with `calibration=<file>` (docs/estimator.md, "Calibration"). The planner side is torch-free: it compiles the
cases (random-initialised models of the chosen architecture, scaled down in layers to fit `budget_gb`; methods
lora and sft; a few micro batches) with the estimator's terms for each, and reads the measurements back.

- An inventory that is this machine (scheduler none: `local`): runs `python -m runtime.calibrate` here (one
  process per case), then writes <out_dir>/calibration-<gpu>.yaml and prints its path on the last line.
- Any other inventory (Slurm, GPUs): compiles a bundle under out_dir instead, calibrate.sbatch and cases.json,
  to submit on that cluster; the job measures there and writes the calibration file beside them.

Keys: inventory, model (default tiny-llama), out_dir (default calibration), methods (default lora,sft),
micro_batches (default 1,4,8), seq (default 256), steps (default 4), budget_gb (default 6: the largest estimate
run here; a larger model is cut to fewer layers), measurements (a measurements.json to read instead of running).
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from planner import estimator as est
from planner import walltime as wt
from planner.errors import ConfigError
from schemas.calibration import MEMORY_TERMS, Calibration, DeviceCalibration, Measured
from schemas.method import TrainMethod
from schemas.model import Architecture
from schemas.spec import Spec

GB = est.GB
DEFAULTS = {
    "model": "tiny-llama",
    "out_dir": "calibration",
    "methods": "lora,sft",
    "micro_batches": "1,4,8",
    "seq": "256",
    "steps": "4",
    "budget_gb": "6",
}
MIN_FITTED = 32 * 2**20  # bytes: a term estimated smaller than this in every case is not fitted (noise)
STATE_TERMS = ("grads", "optimizer", "adapters")
TRANSIENT_TERMS = ("activations", "logits")


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """key=value arguments: this tool's keys, and the Hydra overrides for the spec (inventory, model, ...)."""
    keys = dict(DEFAULTS)
    overrides: list[str] = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if not eq:
            raise ConfigError(f"argument {arg!r} is not key=value", fix="usage: " + __doc__.splitlines()[0])
        if key in DEFAULTS or key == "measurements":
            keys[key] = value
        elif key != "inventory":
            overrides.append(arg)
        else:
            keys[key] = value
    if "inventory" not in keys:
        raise ConfigError("no inventory given", fix="python -m planner.calibrate inventory=local model=tiny-llama")
    return keys, overrides


def spec_for(keys: dict[str, str], overrides: list[str], method: str) -> Spec:
    from planner.compose import load

    return load(
        ["+goal=tone", f"inventory={keys['inventory']}", f"model={keys['model']}", f"method={method}", *overrides]
    )[0]


def scaled(arch: Architecture, layers: int) -> Architecture:
    """The architecture with `layers` decoder layers (its parameter count recomputed)."""
    if layers == arch.num_layers:
        return arch
    cut = arch.model_copy(update={"num_layers": layers})
    return cut.model_copy(update={"total_params": cut.computed_params()})


def cases(keys: dict[str, str], overrides: list[str]) -> dict[str, Any]:
    """The cases to measure, each with the estimator's terms for exactly what runs."""
    out: list[dict[str, Any]] = []
    seq, steps = int(keys["seq"]), int(keys["steps"])
    budget = float(keys["budget_gb"]) * GB
    device = ""
    for kind in keys["methods"].split(","):
        spec = spec_for(keys, overrides, kind)
        method = spec.method
        if not isinstance(method, TrainMethod) or method.kind not in ("lora", "sft"):
            raise ConfigError(f"methods: {kind} is not lora or sft", fix="methods=lora,sft")
        on_cpu = spec.inventory.gpu.name == "cpu"
        device = "cpu" if on_cpu else "cuda"
        precision = "fp32" if on_cpu else "bf16-mixed"
        prior = spec.knowledge.estimator
        arch = spec.model.architecture
        for mb in (int(m) for m in keys["micro_batches"].split(",")):
            # runtime.calibrate loads with SDPA and trains on unpadded rows: no mask, so no s x s term (priced as
            # flash attention is)
            shape = est.Shape(1, 1, 1, 1, mb, mb, seq, "none", False, attention="flash_attention_2")
            layers = arch.num_layers
            if on_cpu:  # cut layers until the estimate fits the budget of one measuring process
                while (
                    layers > 1
                    and est.memory(scaled(arch, layers), method, shape, precision, prior, True).total > budget
                ):
                    layers = max(1, math.floor(layers * 0.75))
            a = scaled(arch, layers)
            mem = est.memory(a, method, shape, precision, prior, is_cpu=on_cpu)
            lora = getattr(method, "lora", None)
            out.append(
                {
                    "case": f"{kind}-mb{mb}",
                    "model": f"{spec.model.name} ({layers} of {arch.num_layers} layers)",
                    "arch": a.model_dump(mode="json"),
                    "num_layers": layers,
                    "method": "lora" if method.finetuning_type == "lora" else "sft",
                    "lora": None
                    if lora is None
                    else {
                        "r": lora.adapter_dim,
                        "alpha": lora.effective_alpha,
                        "dropout": lora.adapter_dropout,
                        "targets": "all-linear" if "all-linear" in lora.target_modules else list(lora.target_modules),
                    },
                    "micro_batch": mb,
                    "seq": seq,
                    "steps": steps,
                    "precision": precision,
                    "estimate": {**{k: getattr(mem, k) for k in (*MEMORY_TERMS, "overhead")}, "total": mem.total},
                    "flops_per_token": wt.flops_per_token(a, method),
                    "peak_flops": spec.inventory.gpu.bf16_tflops * 1e12,
                }
            )
    return {"device": device, "inventory": keys["inventory"], "gpu": spec.inventory.gpu.name, "cases": out}


def factors(compiled: dict[str, Any], measured: dict[str, Any], command: str) -> Calibration:
    """Measured / estimated per term, fitted over the cases (least squares through the origin), the measured
    overhead and fragmentation, and the MFU of the steps."""
    by_case = {r["case"]: r for r in measured["results"]}
    pairs = [(c, by_case[c["case"]]) for c in compiled["cases"] if c["case"] in by_case]

    def fit(terms: tuple[str, ...], what: str) -> float | None:
        est_sum = [sum(c["estimate"][t] for t in terms) for c, _ in pairs]
        meas = [r[what] for _, r in pairs]
        den = sum(e * e for e in est_sum)
        if max(est_sum, default=0) < MIN_FITTED:  # below the RSS noise of a process: keep the prior
            return None
        return round(sum(m * e for m, e in zip(meas, est_sum, strict=True)) / den, 3) if den else None

    memory_factors: dict[str, float] = {}
    for terms, what in ((("weights",), "weights"), (STATE_TERMS, "states"), (TRANSIENT_TERMS, "transient")):
        f = fit(terms, what)
        if f is not None:
            memory_factors.update(dict.fromkeys(terms, f))
    overhead = int(sorted(r["overhead"] for _, r in pairs)[len(pairs) // 2])
    frag = [r.get("fragmentation", 1.0) for _, r in pairs]
    mfus = [r["tokens_per_second"] * c["flops_per_token"] / c["peak_flops"] for c, r in pairs]
    cases = tuple(
        Measured(
            case=c["case"],
            model=c["model"],
            num_layers=c["num_layers"],
            micro_batch=c["micro_batch"],
            seq=c["seq"],
            estimated_bytes=c["estimate"]["total"],
            peak_bytes=r["peak"],
            tokens_per_second=r["tokens_per_second"],
            mfu=round(m, 5),
        )
        for (c, r), m in zip(pairs, mfus, strict=True)
    )
    entry = DeviceCalibration(
        device=pairs[0][1]["device"] if pairs else compiled["device"],
        measured_on=f"inventory {compiled['inventory']}: {command}",
        memory_factors=memory_factors,
        overhead_bytes=overhead,
        fragmentation=round(max(1.0, max(frag)), 3),
        mfu=round(sorted(mfus)[len(mfus) // 2], 5) if mfus else None,
        cases=cases,
    )
    return Calibration(gpus={compiled["gpu"]: entry})


def write_calibration(path: Path, cal: Calibration, command: str) -> None:
    header = (
        f"# Written by {command}\n"
        "# Use it: python -m planner +goal=<goal> inventory=<name> calibration=" + str(path.resolve()) + "\n"
        "# memory_factors: measured / estimated per memory term; overhead_bytes replaces the overhead prior;\n"
        "# mfu replaces the MFU prior. cases: each measurement beside its (uncalibrated) estimate.\n"
    )
    body = yaml.safe_dump(cal.model_dump(mode="json", exclude={"path"}), sort_keys=True)
    path.write_text(header + body, encoding="utf-8")


def sbatch(compiled: dict[str, Any], spec: Spec, keys: dict[str, str], overrides: list[str]) -> str:
    """The Slurm job that measures on one GPU of the inventory and writes the calibration file."""
    from planner.launchers.base import template

    inv = spec.inventory
    args = [f"inventory={keys['inventory']}", f"model={keys['model']}", *overrides]
    args += [f"{k}={keys[k]}" for k in ("methods", "micro_batches", "seq", "steps")]
    return template(
        "calibrate/slurm.sbatch.j2",
        inventory=inv.name,
        gpu=inv.gpu.display_name if hasattr(inv.gpu, "display_name") else inv.gpu.name,
        cases=len(compiled["cases"]),
        job_name=f"calibrate-{inv.gpu.name}",
        cpus=max(1, inv.cpus_per_node // max(1, inv.gpus_per_node)),
        mem=f"{max(16, int(inv.memory_per_node_gb / max(1, inv.gpus_per_node)))}G",
        partition=inv.partition,
        account=inv.account,
        python=shlex.quote(spec.launcher.python),
        planner_args=" ".join(shlex.quote(a) for a in args),
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "python -m planner.calibrate " + " ".join(shlex.quote(a) for a in argv)
    try:
        keys, overrides = parse(argv)
        compiled = cases(keys, overrides)
        spec = spec_for(keys, overrides, keys["methods"].split(",")[0])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(keys["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    cases_file = out / "cases.json"
    cases_file.write_text(json.dumps(compiled, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    target = out / f"calibration-{compiled['gpu']}.yaml"
    measurements = Path(keys["measurements"]) if "measurements" in keys else None
    if measurements is None and spec.inventory.scheduler != "none":
        job = out / "calibrate.sbatch"
        job.write_text(sbatch(compiled, spec, keys, overrides), encoding="utf-8")
        print(f"{len(compiled['cases'])} cases for {spec.inventory.name} ({spec.inventory.gpu.name}) in {cases_file}")
        print(f"submit from {out}: sbatch calibrate.sbatch (it writes {target.name} there)")
        print(job)
        return 0
    if measurements is None:
        measurements = out / "measurements.json"
        rc = subprocess.call([sys.executable, "-m", "runtime.calibrate", str(cases_file), "--out", str(measurements)])
        if rc != 0:
            print(f"error: the measurements failed (exit {rc})", file=sys.stderr)
            return 1
    cal = factors(compiled, json.loads(measurements.read_text(encoding="utf-8")), command)
    write_calibration(target, cal, command)
    entry = cal.gpus[compiled["gpu"]]
    for c in entry.cases:
        print(
            f"{c.case:<10} {c.model}: peak {c.peak_bytes / GB:.3f} GB / estimate {c.estimated_bytes / GB:.3f} GB = "
            f"{c.peak_bytes / max(1, c.estimated_bytes):.2f}, {c.tokens_per_second:.0f} tokens/s, MFU {c.mfu:.2%}"
        )
    print("factors: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(entry.memory_factors.items())))
    print(target.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
