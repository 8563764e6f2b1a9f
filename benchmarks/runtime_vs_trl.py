"""Our train stage against a plain hand-written TRL SFTTrainer script: same model, data, batch, steps.

    cd /work/main && PYTHONPATH=. python benchmarks/runtime_vs_trl.py [--runs 3] [--steps 100] [--packing both|no|yes]

Both sides run as fresh processes (imports, model load, data preparation, evaluation and a
checkpoint each epoch, the final save: what a user waits for), interleaved A/B, B/A, ... so a
busy machine hurts both alike. The baseline reads plan.json only for the numbers (learning rate,
batch, steps, sequence length, LoRA settings), then does what a person would write by hand:
read the JSONL, build prompt/completion records with the template, SFTTrainer + LoraConfig.
Both use one intra-op thread (our runtime does that for small models on CPU; a two-thread
baseline on a busy 2-core machine runs up to 10x slower, which would flatter the ratio).

Prints, with and without sequence packing: median wall-clock seconds each side, the ratio
(ours / plain TRL; target <= 1.10) and tokens/s (trained tokens / wall-clock). On CPU our stage
computes the loss from the full logits where plain TRL scores the vocabulary in tiles (a GPU
memory saver that runs as Python loops on CPU), so ours is faster here; on GPUs both use TRL's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_RATIO = 1.10


# ----------------------------------------------------------------------------- the plain TRL script


def baseline(plan_path: Path, out: Path) -> None:
    """A plain TRL script with the plan's numbers."""
    import torch

    torch.set_num_threads(1)
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from runtime import tiny

    plan = json.loads(plan_path.read_text())
    method, layout = plan["spec"]["method"], plan["layout"]
    data = ROOT / "conf" / "samples" / plan["spec"]["data"]["path"].removeprefix("builtin:")

    def records(split: str) -> list[dict]:
        out = []
        for f in sorted((data / split).glob("*.jsonl")):
            for line in f.read_text().splitlines():
                r = json.loads(line)
                out.append({"prompt": r["prompt"], "completion": " " + r["completion"]})  # "{prompt} {completion}"
        return out

    model_dir = tiny.build(progress=False)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = method["lora"]
    args = SFTConfig(
        output_dir=str(out), max_steps=method["max_steps"], num_train_epochs=method["epochs"],
        per_device_train_batch_size=layout["micro_batch"], per_device_eval_batch_size=layout["micro_batch"],
        gradient_accumulation_steps=layout["grad_accum"], learning_rate=method["learning_rate"],
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr": 0.1 * method["learning_rate"]},
        seed=method["seed"], max_length=layout["seq_length"], packing=method["sequence_packing"],
        eval_strategy="epoch", save_strategy="epoch", logging_steps=10, report_to="none", use_cpu=True,
        activation_checkpointing=False, disable_tqdm=True, dataloader_pin_memory=False,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(records("training")),
                         eval_dataset=datasets.Dataset.from_list(records("validation")), processing_class=tok,
                         peft_config=LoraConfig(r=lora["adapter_dim"], lora_alpha=lora["alpha"] or lora["adapter_dim"],
                                                lora_dropout=lora["adapter_dropout"], target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    tokens = next(h["num_tokens"] for h in reversed(trainer.state.log_history) if "num_tokens" in h)
    print(json.dumps({"steps": trainer.state.global_step, "tokens": tokens}))


# ----------------------------------------------------------------------------- the harness


def make_bundle(root: Path, steps: int, packing: bool) -> Path:
    from planner.compose import load
    from planner.core import plan
    from planner.probe import probe
    from planner.tokens import token_counter

    spec, _ = load(["+goal=tone", "model=tiny-llama", "inventory=local", "method=lora",
                    f"method.max_steps={steps}", f"method.sequence_packing={str(packing).lower()}"])
    p = plan(spec, probe(spec.data, ROOT, token_counter(spec)))
    bundle = root / f"{p.name}-{'packed' if packing else 'padded'}"
    bundle.mkdir(parents=True)
    (bundle / "plan.json").write_text(p.model_dump_json(indent=2))
    return bundle


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def run_ours(bundle: Path) -> tuple[float, int, int]:
    shutil.rmtree(bundle / "run", ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "runtime", "plan.json", "--stage", "train"], cwd=bundle, env=_env(),
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"our train stage failed:\n{proc.stdout}\n{proc.stderr}")
    status = json.loads((bundle / "run/train/status.json").read_text())
    last = max((bundle / "run/train/checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    tokens = next(h["num_tokens"] for h in reversed(history) if "num_tokens" in h)
    return wall, status["steps_completed"], int(tokens)


def run_plain(bundle: Path, out: Path) -> tuple[float, int, int]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--baseline", str(bundle / "plan.json"), str(out)], env=_env(),
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"the plain TRL script failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, result["steps"], int(result["tokens"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per run (2 epochs of tone at 100)")
    parser.add_argument("--packing", choices=("both", "no", "yes"), default="both")
    parser.add_argument("--baseline", nargs=2, metavar=("PLAN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        baseline(Path(args.baseline[0]), Path(args.baseline[1]))
        return 0

    from runtime import tiny

    tiny.build(progress=False)
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="runtime-vs-trl-") as tmp:
        root = Path(tmp)
        print(f"tiny-llama LoRA on tone, {args.steps} steps, {args.runs} interleaved runs each, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'packing':8} {'ours s':>8} {'TRL s':>8} {'ratio':>6} {'ours tok/s':>11} {'TRL tok/s':>10}  "
              "runs (ours/TRL s)")
        modes = {"both": (False, True), "no": (False,), "yes": (True,)}[args.packing]
        for packing in modes:
            bundle = make_bundle(root, args.steps, packing)
            ours, plain = [], []
            for i in range(args.runs):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for side in order:
                    if side == 0:
                        ours.append(run_ours(bundle))
                    else:
                        plain.append(run_plain(bundle, root / "plain"))
            for (_, s1, t1), (_, s2, t2) in zip(ours, plain):
                if s1 != s2:
                    raise SystemExit(f"different step counts: ours {s1}, TRL {s2}")
            ours_s = statistics.median(w for w, _, _ in ours)
            plain_s = statistics.median(w for w, _, _ in plain)
            ratio = ours_s / plain_s
            worst = max(worst, ratio)
            ours_tps = statistics.median(t / w for w, _, t in ours)
            plain_tps = statistics.median(t / w for w, _, t in plain)
            runs = ", ".join(f"{a[0]:.1f}/{b[0]:.1f}" for a, b in zip(ours, plain))
            print(f"{'yes' if packing else 'no':8} {ours_s:8.1f} {plain_s:8.1f} {ratio:6.2f} {ours_tps:11.0f} "
                  f"{plain_tps:10.0f}  {runs}")
    verdict = "ok" if worst <= TARGET_RATIO else "ABOVE TARGET"
    print(f"worst ratio {worst:.2f} (target <= {TARGET_RATIO:.2f}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
