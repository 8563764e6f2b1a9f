"""Calibration measurements: random-initialised models of real shapes, a few training steps each, on this device.

    python -m runtime.calibrate CASES.json --out MEASUREMENTS.json

CASES.json is what `python -m planner.calibrate` compiled: the device, and per case an architecture (a catalog
model's, scaled down in layers where the planner said so), a method (lora or sft), a micro batch, a sequence
length, the steps to run and the estimator's terms for that exact case. Each case runs in a fresh process (a
peak RSS is per process), through transformers' Trainer as the training stages do (AdamW, the model's own
loss, LoRA through peft), on random token ids of the case's length. Nothing is downloaded: the model is built
from its config with random weights.

What each case measures (bytes), CPU by RSS (runtime.memory: /proc VmRSS, VmHWM reset per phase) and GPU by
torch.cuda memory stats:
  overhead    the process before the model (torch, transformers, peft imported; CUDA context on GPU)
  weights     the model built (and the adapter added)
  states      what stays after the first optimizer step: gradients, optimizer moments (adapters' for LoRA)
  transient   the peak of a step above what was resident before it: activations, logits and loss
  peak        the highest of all (CUDA: max reserved; allocated beside it gives the fragmentation)
and the tokens/s of the steps after the first. The planner turns them into correction factors per term.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from runtime.memory import current_rss, peak_rss, reset_peak_rss, settle_allocator


def hf_config(arch: dict[str, Any], layers: int) -> Any:
    """A transformers config of the catalog architecture with `layers` decoder layers (Qwen2 with q/k/v bias,
    Gemma 2 with four norms, Llama otherwise)."""
    from transformers import Gemma2Config, LlamaConfig, Qwen2Config

    common = {
        "vocab_size": arch["vocab_size"],
        "hidden_size": arch["hidden_size"],
        "intermediate_size": arch["intermediate_size"],
        "num_hidden_layers": layers,
        "num_attention_heads": arch["num_heads"],
        "num_key_value_heads": arch["num_kv_heads"],
        "head_dim": arch["head_dim"],
        "max_position_embeddings": arch["max_position_embeddings"],
        "tie_word_embeddings": arch["tied_embeddings"],
    }
    if arch.get("norms_per_layer") == 4:
        return Gemma2Config(**common)
    if arch.get("qkv_bias"):
        return Qwen2Config(**common)
    return LlamaConfig(**common, attention_bias=False, mlp_bias=False)


def run_case(case: dict[str, Any], device: str) -> dict[str, Any]:
    """One case in this process: build, train `steps` steps, measure."""
    import torch

    on_cpu = device == "cpu"
    settle_allocator(on_cpu)
    import datasets  # noqa: F401  (imported before the baseline, as a training stage imports them)
    import peft  # noqa: F401
    import transformers
    import trl  # noqa: F401
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    transformers.logging.set_verbosity_error()
    cuda = not on_cpu and torch.cuda.is_available()
    if cuda:
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # the context
        torch.cuda.reset_peak_memory_stats()

    def now() -> int:
        return int(torch.cuda.memory_allocated()) if cuda else current_rss()

    overhead = current_rss() if on_cpu else int(torch.cuda.memory_reserved())
    torch.manual_seed(0)
    dtype = torch.float32 if case["precision"] == "fp32" or case["method"] == "sft" else torch.bfloat16
    # SDPA on full-length rows (no padding mask), as planner.calibrate prices the case
    model = AutoModelForCausalLM.from_config(
        hf_config(case["arch"], case["num_layers"]), dtype=dtype, attn_implementation="sdpa"
    )
    if case["method"] == "lora":
        from peft import LoraConfig, get_peft_model

        lora = case["lora"]
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora["r"],
                lora_alpha=lora["alpha"],
                lora_dropout=lora["dropout"],
                target_modules=lora["targets"],
                bias="none",
                task_type="CAUSAL_LM",
            ),
        )
    if cuda:
        model.to("cuda")
    weights = now() - (0 if cuda else overhead)

    b, s, steps = case["micro_batch"], case["seq"], case["steps"]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, case["arch"]["vocab_size"], (b * steps, s), generator=g)
    rows = [{"input_ids": row, "labels": row} for row in ids]
    record: dict[str, Any] = {"step_peaks": [], "resident": [], "step_seconds": []}

    class Measure(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            record["resident"].append(now())
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            else:
                reset_peak_rss()
            record["t0"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            record["step_seconds"].append(time.perf_counter() - record["t0"])
            if cuda:
                record["step_peaks"].append(int(torch.cuda.max_memory_allocated()))
                record.setdefault("reserved", []).append(int(torch.cuda.max_memory_reserved()))
            else:
                record["step_peaks"].append(peak_rss())
            record.setdefault("after", []).append(now())

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=b,
            max_steps=steps,
            learning_rate=1e-4,
            optim="adamw_torch_fused",  # as the training stages (runtime.trainer.OPTIMIZERS)
            bf16=cuda and case["precision"].startswith("bf16"),
            use_cpu=not cuda,
            save_strategy="no",
            eval_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=0,
        )
        trainer = Trainer(
            model=model, args=args, train_dataset=_Rows(rows), data_collator=_stack, callbacks=[Measure()]
        )
        trainer.train()

    peaks = record["step_peaks"]
    states = record["after"][0] - record["resident"][0]  # the first step allocates gradients and optimizer state
    transient = max(p - r for p, r in zip(peaks, record["resident"], strict=True))
    peak = max(peaks) if cuda else max([*peaks, weights + overhead])
    timed = record["step_seconds"][1:] or record["step_seconds"]
    tokens_per_second = b * s / (sum(timed) / len(timed))
    out = {
        "case": case["case"],
        "overhead": overhead,
        "weights": weights,
        "states": states,
        "transient": transient,
        "peak": peak + (overhead if cuda else 0),
        "tokens_per_second": round(tokens_per_second, 2),
        "device": torch.cuda.get_device_name()
        if cuda
        else f"cpu ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})",
    }
    if cuda:
        out["reserved"] = max(record["reserved"])
        out["fragmentation"] = round(max(record["reserved"]) / max(peaks), 3)
    return out


class _Rows:
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def _stack(batch: list[dict]) -> dict:
    import torch

    return {k: torch.stack([r[k] for r in batch]) for k in batch[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runtime.calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="measurements.json to write")
    ap.add_argument("--case", type=int, default=None, help="run this case only, in this process (internal)")
    a = ap.parse_args(argv)
    spec = json.loads(a.cases.read_text())
    if a.case is not None:
        result = run_case(spec["cases"][a.case], spec["device"])
        a.out.write_text(json.dumps(result, sort_keys=True))
        return 0
    results = []
    for i, case in enumerate(spec["cases"]):  # one fresh process per case: its peak is its own
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            one = Path(fh.name)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "runtime.calibrate", str(a.cases), "--out", str(one), "--case", str(i)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            one.unlink(missing_ok=True)
            print(f"case {case['case']} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(one.read_text()))
        one.unlink(missing_ok=True)
        r = results[-1]
        print(
            f"{case['case']:<12} {case['model']}: peak {r['peak'] / 1e9:.3f} GB (estimate "
            f"{case['estimate']['total'] / 1e9:.3f} GB, x{r['peak'] / max(1, case['estimate']['total']):.2f}), "
            f"{r['tokens_per_second']:.0f} tokens/s, {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    a.out.write_text(json.dumps({"device": spec["device"], "results": results}, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
