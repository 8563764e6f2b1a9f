"""Memory accuracy: the train stage's measured peak against its plan, for LoRA and full SFT at several micro batches.

Each case is what a user runs: `python -m planner +goal=tone model=local model.path=<dir> inventory=local
method=<lora|sft> layout.micro_batch=<b> ...` compiles a plan for a random-initialised Llama of a real shape (its
weights in bf16 safetensors, as published checkpoints ship; the tokenizer runtime.tiny trains; memory depends on
shapes, not on weight values), then `python -m runtime plan.json --stage train` trains it a few steps on the
shipped tone data and writes status.json: peak_memory_bytes (peak RSS on CPU) beside the plan's
estimated_memory_bytes, and the widest batch it trained beside the one the plan priced. Cases run one at a time,
each in its own processes. The bound the planner promises: 0.90 <= measured / estimate <= 1.10.

    python benchmarks/memory_accuracy.py [--shapes s20m,s110m,l1b] [--methods lora,sft,dpo,grpo-lora]
        [--micro-batches 1,4,8,16]
        [--steps 12] [--chars] [--only s110m-lora-16,...] [--out results.json]

Each case trains the plan as compiled: the model folder holds its tokenizer.json, so the planner counts the data's
tokens with it (planner.tokens). --chars also plans each case from the same folder without its tokenizer.json
(tokens estimated as chars / knowledge.estimator.chars_per_token, what the planner does for a model whose tokenizer
is not on the login node) and prints that ratio beside: it separates the data estimate's error from the memory
model's.

l1b (Llama 3.2 1B) full SFT needs ~21 GB and is skipped unless asked for by --only.
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

ROOT = Path(__file__).resolve().parent.parent
LOW, HIGH = 0.90, 1.10
SHAPES = {  # LlamaConfig keys; total parameters: 21.7M, 112.7M, 1.24B
    "s20m": {"vocab_size": 32000, "hidden_size": 384, "intermediate_size": 1024, "num_hidden_layers": 6,
             "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 64},
    "s110m": {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 14,
              "num_attention_heads": 12, "num_key_value_heads": 4, "head_dim": 64},
    "l1b": {"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64},  # Llama 3.2 1B
}  # fmt: skip
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
SKIP = {("l1b", "sft")}  # 16 bytes a parameter: 20 GB of model states


def cache() -> Path:
    env = os.environ.get("LADDER_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "ladder") / "memory-accuracy"


def build(shape: str) -> Path:
    """The shape's random-initialised model folder (built once: config.json, bf16 model.safetensors, tokenizer)."""
    folder = cache() / shape
    if (folder / "model.safetensors").is_file():
        return folder
    code = (
        "import sys, json, torch\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "from runtime import tiny\n"
        "cfg = LlamaConfig(**json.loads(sys.argv[2]), tie_word_embeddings=True, max_position_embeddings=2048,\n"
        "                  pad_token_id=0, bos_token_id=1, eos_token_id=2, attention_bias=False, mlp_bias=False)\n"
        "torch.manual_seed(0)\n"
        "LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(sys.argv[1])\n"
        "tiny.train_tokenizer(4096).save_pretrained(sys.argv[1])\n"
    )
    tmp = folder.with_name(folder.name + ".tmp")
    subprocess.run([sys.executable, "-c", code, str(tmp), json.dumps(SHAPES[shape])], check=True, cwd=ROOT)
    tmp.rename(folder)
    return folder


def method_overrides(method: str, model: Path) -> list[str]:
    """The goal and method keys of a case: lora and sft train the tone goal; dpo (safety_alignment's preference
    pairs, the reference a copy, from the model itself: no SFT stage first) and grpo (math_reasoning, 8 completions
    of up to 64 tokens per prompt) train all weights, and their -lora variants an adapter."""
    kind, _, lora = method.partition("-")
    keys = {
        "lora": ["+goal=tone", "method=lora"],
        "sft": ["+goal=tone", "method=sft"],
        "dpo": ["+goal=safety_alignment", "method=dpo", f"method.sft_base={model}"],
        "grpo": ["+goal=math_reasoning", "method=grpo", "method.max_completion_length=64"],
    }[kind]
    return [*keys, "method.finetuning_type=lora"] if lora else keys


def untokenized(folder: Path, where: Path) -> Path:
    """The model folder without its tokenizer.json (links to its other files, under `where`, same name)."""
    copy = where / folder.name
    copy.mkdir(parents=True)
    for f in folder.iterdir():
        if f.name != "tokenizer.json":
            (copy / f.name).symlink_to(f)
    return copy


def plan(
    shape: str, method: str, micro: int, steps: int, out: str, knobs: list[str], model: Path | None = None
) -> Path:
    """Compile the case's plan under `out` (for the shape's model folder, or `model`); its bundle."""
    model = model or build(shape)
    overrides = [
        *method_overrides(method, model),
        "model=local",
        f"model.path={model}",
        "inventory=local",
        f"layout.micro_batch={micro}",
        f"method.batch_size={max(8, micro)}",
        f"method.max_steps={steps}",
        f"out_dir={out}",
        *knobs,
    ]
    cmd = [sys.executable, "-m", "planner", *overrides]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    bundles = list(Path(out).glob("*/plan.json"))
    if done.returncode != 0 or not bundles:
        raise RuntimeError(f"{shape} {method} mb{micro}: planning failed\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return bundles[0].parent


def estimate(bundle: Path) -> tuple[int, dict]:
    """The train stage's planned total and its layout."""
    stage = next(s for s in json.loads((bundle / "plan.json").read_text())["stages"] if s["name"] == "train")
    return stage["estimate"]["memory_per_gpu_bytes"]["total"], stage["layout"]


def case(shape: str, method: str, micro: int, steps: int, chars: bool, extra: list[str]) -> dict:
    """Plan and run one train stage (the plan as compiled); its status.json numbers, and with `chars` the estimate
    of the same case planned without the tokenizer beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = plan(shape, method, micro, steps, f"{tmp}/run", extra)
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "runtime", "plan.json", "--stage", "train"],
            cwd=bundle,
            env=ENV,
            capture_output=True,
            text=True,
        )
        status = json.loads((bundle / "run" / "train" / "status.json").read_text())
        if run.returncode != 0:
            raise RuntimeError(f"{shape} {method} mb{micro}: the stage failed: {status.get('error')}")
        seconds = time.monotonic() - started
        by_chars, other = None, ""
        if chars:  # the same case planned by characters: comparable only when it has the same layout
            folder = untokenized(build(shape), Path(tmp) / "untokenized")
            by_chars, layout = estimate(plan(shape, method, micro, steps, f"{tmp}/chars", extra, folder))
            ran = estimate(bundle)[1]
            changed = sorted(k for k in ran if layout.get(k) != ran[k])
            if changed:
                by_chars, other = None, f"planned by chars with another layout ({', '.join(changed)})"
    peak = status["peak_memory_bytes"]
    return {
        "case": f"{shape}-{method}-{micro}",
        "peak": peak,
        "estimate": status["estimated_memory_bytes"],
        "ratio": peak / status["estimated_memory_bytes"],
        "estimate_chars": by_chars,
        "ratio_chars": peak / by_chars if by_chars else None,
        "chars_layout": other,
        "widest": status.get("widest_batch_tokens"),
        "planned_widest": status.get("estimated_widest_batch_tokens"),
        "seconds": round(seconds, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="s20m,s110m,l1b")
    ap.add_argument("--methods", default="lora,sft")
    ap.add_argument("--micro-batches", default="1,4,8,16")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--chars", action="store_true", help="also plan without the tokenizer (chars/token)")
    ap.add_argument("--only", default="", help="comma-separated cases <shape>-<method>-<micro batch>")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    ap.add_argument("extra", nargs="*", help="more planner overrides for every case")
    a = ap.parse_args()
    wanted = [
        (shape, method, int(mb))
        for shape in a.shapes.split(",")
        for method in a.methods.split(",")
        for mb in a.micro_batches.split(",")
    ]
    if a.only:  # <shape>-<method>-<micro batch>, the method perhaps with a -lora
        wanted = []
        for c in a.only.split(","):
            shape, rest = c.split("-", 1)
            method, micro = rest.rsplit("-", 1)
            wanted.append((shape, method, int(micro)))
    else:
        wanted = [w for w in wanted if w[:2] not in SKIP]
    rows = []
    for shape, method, micro in wanted:
        r = case(shape, method, micro, a.steps, a.chars, a.extra)
        rows.append(r)
        told = f"  {r['chars_layout']}" if r["chars_layout"] else ""
        told = told if r["ratio_chars"] is None else f"  planned by chars: {r['ratio_chars']:.2f}"
        print(
            f"{r['case']:<16} peak {r['peak'] / 1e9:6.3f} GB  estimate {r['estimate'] / 1e9:6.3f} GB  "
            f"measured/estimate {r['ratio']:.2f} {flag(r['ratio'])}{told}  widest batch {r['widest']} (planned "
            f"{r['planned_widest']})  {r['seconds']:.0f} s",
            flush=True,
        )
        if a.out:
            a.out.write_text(json.dumps(rows, indent=2) + "\n")
    inside = sum(LOW <= r["ratio"] <= HIGH for r in rows)
    print(f"{inside} of {len(rows)} cases within {LOW:.2f}-{HIGH:.2f} as planned (tokens counted with the tokenizer)")
    if a.chars:
        same = [r for r in rows if r["ratio_chars"] is not None]
        told = sum(LOW <= r["ratio_chars"] <= HIGH for r in same)
        print(f"{told} of {len(same)} within {LOW:.2f}-{HIGH:.2f} planned by chars (no tokenizer.json) with the same "
              f"layout; {len(rows) - len(same)} planned by chars with another layout")
    return 0


def flag(ratio: float) -> str:
    return "ok " if LOW <= ratio <= HIGH else "OUT"


if __name__ == "__main__":
    sys.exit(main())
