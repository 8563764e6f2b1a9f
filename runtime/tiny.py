"""tiny-llama: a real Hugging Face Llama model that this project builds itself, on CPU.

Nothing is downloaded. ``build()`` trains a byte-level BPE tokenizer (vocab 4096) on the
texts of the sample datasets TOKENIZER_DATASETS names, initialises a ``LlamaForCausalLM`` exactly per
``conf/model/tiny-llama.yaml`` from a fixed seed, pre-trains it briefly on the general corpus
(``conf/samples/general/corpus.txt``; never on the task datasets' texts, which the tokenizer
sees but the model must learn later, by LoRA/SFT/DPO/GRPO), and saves model and tokenizer in
Hugging Face format. Load it like any other model::

    from runtime import tiny
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d = tiny.build()                      # cached: returns at once when already built
    model = AutoModelForCausalLM.from_pretrained(d)
    tokenizer = AutoTokenizer.from_pretrained(d)

The cache directory is ``$LADDER_CACHE`` (default ``~/.cache/ladder``) /
``tiny-llama-<hash>``; the hash covers the architecture, the bytes of every input text, the
training recipe and ``RECIPE_VERSION`` (bump it when the build code changes its output), so
any change builds a new model. A build writes into a temporary directory next to the target
and renames it into place, under an exclusive ``fcntl`` lock, so concurrent processes build
once and never see a half-written model.

CLI: ``python -m runtime.tiny [--force] [--out DIR] [--quiet]`` prints the model directory.

torch / transformers / tokenizers are imported lazily: ``path()`` stays cheap.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from schemas.paths import conf_dir  # the shipped conf/: source tree or installed wheel

ROOT = conf_dir()
MODEL_YAML = ROOT / "model" / "tiny-llama.yaml"
SAMPLES = ROOT / "samples"
CORPUS = SAMPLES / "general" / "corpus.txt"
BENCHMARK = SAMPLES / "general" / "benchmark.jsonl"

NAME = "tiny-llama"
# Sample datasets whose text trains the tokenizer (named: a new sample must not rebuild the model the recipes fit)
TOKENIZER_DATASETS = (
    "legal_classification",
    "math_reasoning",
    "product_knowledge",
    "safety_alignment",
    "support_format",
    "tone",
)
# fields of those datasets whose text the tokenizer is trained on
TEXT_FIELDS = ("prompt", "completion", "chosen", "rejected", "answer", "title", "text")
PAD, BOS, EOS = "<pad>", "<s>", "</s>"  # ids 0, 1, 2
RECIPE_VERSION = 1
RECIPE: dict[str, Any] = {
    "seed": 0,
    "steps": 400,
    "batch_size": 32,
    "micro_batch_size": 8,  # gradient accumulation: smaller logits, fewer page faults
    "seq_len": 128,
    "lr": 6e-3,
    "min_lr_ratio": 0.1,
    "warmup_steps": 20,
    "weight_decay": 0.0,
    "betas": [0.9, 0.95],
    "grad_clip": 1.0,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6,
    "initializer_range": 0.02,
}
INFO_FILE = "build_info.json"
# Not part of the recipe: one thread by default (see build_threads); the override is for speed
# on an idle many-core machine and may change the bytes.
THREADS_ENV = "LADDER_TINY_THREADS"


# ----------------------------------------------------------------------------- inputs, hash


def architecture() -> dict:
    """The ``architecture`` block of conf/model/tiny-llama.yaml."""
    return yaml.safe_load(MODEL_YAML.read_text(encoding="utf-8"))["architecture"]


def _dataset_files() -> list[Path]:
    return sorted(
        p for d in TOKENIZER_DATASETS for s in ("training", "validation") for p in (SAMPLES / d / s).glob("*.jsonl")
    )


def fingerprint() -> str:
    """sha256 over architecture, input text bytes, recipe and recipe version."""
    # the checkpoint's bytes per parameter describe the saved file, not an input to what is built
    shape = {k: v for k, v in architecture().items() if k != "checkpoint_bytes_per_param"}
    payload = {
        "name": NAME,
        "architecture": shape,
        "recipe": RECIPE,
        "recipe_version": RECIPE_VERSION,
        "inputs": {
            "conf/" + p.relative_to(ROOT).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in [CORPUS, *_dataset_files()]
        },
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def cache_root() -> Path:
    env = os.environ.get("LADDER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ladder"


def path() -> Path:
    """Where the cached model lives (built or not)."""
    return cache_root() / f"{NAME}-{fingerprint()[:16]}"


def build_threads() -> int:
    """Threads for the build: $LADDER_TINY_THREADS, else 1.

    One thread keeps the bytes identical everywhere (a different thread count can change the
    order of float reductions), and on a busy 2-core machine torch's OpenMP workers wait on each
    other: one thread built in 63-88 s where two took up to 447 s."""
    env = os.environ.get(THREADS_ENV, "").strip()
    return max(1, int(env)) if env else 1


def _is_built(d: Path, digest: str) -> bool:
    try:
        info = json.loads((d / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("hash") == digest and (d / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- tokenizer


def _tokenizer_texts() -> list[str]:
    texts = CORPUS.read_text(encoding="utf-8").splitlines()
    for f in _dataset_files():
        for line in f.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts.extend(record[k] for k in TEXT_FIELDS if isinstance(record.get(k), str))
    return texts


def train_tokenizer(vocab_size: int):
    """Byte-level BPE (no unknown tokens), deterministic, wrapped as a PreTrainedTokenizerFast
    that prepends BOS like Llama's tokenizers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_tokenizer_texts(), trainer)
    if backend.get_vocab_size() != vocab_size:
        raise RuntimeError(f"tokenizer vocab {backend.get_vocab_size()} != {vocab_size}")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        add_bos_token=True,
        add_eos_token=False,
        model_max_length=architecture()["max_position_embeddings"],
    )
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert len(tokenizer) == vocab_size
    return tokenizer


# ----------------------------------------------------------------------------- model


def llama_config(arch: dict | None = None):
    """LlamaConfig exactly per the YAML architecture."""
    from transformers import LlamaConfig

    a = arch or architecture()
    if a["qkv_bias"] or a["norms_per_layer"] != 2:
        raise ValueError("tiny-llama: a Llama block has no qkv bias and 2 norms per layer")
    return LlamaConfig(
        vocab_size=a["vocab_size"],
        hidden_size=a["hidden_size"],
        intermediate_size=a["intermediate_size"],
        num_hidden_layers=a["num_layers"],
        num_attention_heads=a["num_heads"],
        num_key_value_heads=a["num_kv_heads"],
        head_dim=a["head_dim"],
        max_position_embeddings=a["max_position_embeddings"],
        tie_word_embeddings=a["tied_embeddings"],
        attention_bias=a["qkv_bias"],
        mlp_bias=False,
        hidden_act="silu",
        rms_norm_eps=RECIPE["rms_norm_eps"],
        initializer_range=RECIPE["initializer_range"],
        rope_parameters={"rope_type": "default", "rope_theta": RECIPE["rope_theta"]},
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def _blocks(lines: list[list[int]], steps: int, batch: int, seq_len: int, generator):
    """[steps, batch, seq_len] token blocks: each epoch shuffles the lines, concatenates
    them and cuts the stream into seq_len blocks (the tail of an epoch is dropped)."""
    import torch

    need = steps * batch
    blocks: list[list[int]] = []
    while len(blocks) < need:
        order = torch.randperm(len(lines), generator=generator).tolist()
        stream = [t for i in order for t in lines[i]]
        blocks.extend(stream[j : j + seq_len] for j in range(0, len(stream) - seq_len + 1, seq_len))
    return torch.tensor(blocks[:need], dtype=torch.long).view(steps, batch, seq_len)


@contextlib.contextmanager
def _torch_settings(threads: int, progress: bool):
    """Thread count, deterministic algorithms, a forked RNG and (quiet builds) no progress
    bars from transformers; all restored afterwards."""
    import torch
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)
        if bars:
            hf_logging.enable_progress_bar()


def _pretrain(model, lines: list[list[int]], progress: bool) -> float:
    import torch

    r = RECIPE
    steps = r["steps"]
    data = _blocks(lines, steps, r["batch_size"], r["seq_len"], torch.Generator().manual_seed(r["seed"] + 1))
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], betas=tuple(r["betas"]), weight_decay=r["weight_decay"])

    def lr_at(step: int) -> float:  # linear warmup, cosine down to min_lr_ratio * lr
        if step < r["warmup_steps"]:
            return r["lr"] * (step + 1) / r["warmup_steps"]
        t = (step - r["warmup_steps"]) / max(1, steps - r["warmup_steps"])
        return r["lr"] * (r["min_lr_ratio"] + (1 - r["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * t)))

    model.train()
    every = max(1, steps // 10)
    loss_value = float("nan")
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        micro = data[step].split(r["micro_batch_size"])
        loss_value = 0.0
        for x in micro:  # equal token counts (no padding): the mean of means is the mean
            loss = model(input_ids=x, labels=x).loss / len(micro)
            loss.backward()
            loss_value += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), r["grad_clip"])
        opt.step()
        if progress and (step % every == 0 or step == steps - 1):
            print(f"{NAME}: step {step + 1}/{steps} loss {loss_value:.4f}", flush=True)
    model.eval()
    return loss_value


def _build_into(d: Path, digest: str, progress: bool) -> dict:
    import torch
    from transformers import LlamaForCausalLM

    t0 = time.perf_counter()
    arch = architecture()
    threads = build_threads()
    with _torch_settings(threads, progress):
        tokenizer = train_tokenizer(arch["vocab_size"])
        corpus = CORPUS.read_text(encoding="utf-8").splitlines()
        lines = [tokenizer(line)["input_ids"] + [tokenizer.eos_token_id] for line in corpus if line]
        torch.manual_seed(RECIPE["seed"])
        model = LlamaForCausalLM(llama_config(arch))
        n_params = model.num_parameters()
        if n_params != arch["total_params"]:
            raise RuntimeError(f"{NAME}: {n_params} parameters, YAML total_params {arch['total_params']}")
        if progress:
            print(
                f"{NAME}: {n_params:,} parameters, {sum(map(len, lines)):,} corpus tokens, {threads} thread(s)",
                flush=True,
            )
        final_loss = _pretrain(model, lines, progress)
        model.save_pretrained(d)
        tokenizer.save_pretrained(d)
    saved = _saved_param_count(d / "model.safetensors")
    if saved != arch["total_params"]:
        raise RuntimeError(f"{NAME}: saved {saved} parameters, YAML total_params {arch['total_params']}")
    info = {
        "name": NAME,
        "hash": digest,
        "recipe": RECIPE,
        "recipe_version": RECIPE_VERSION,
        "params": saved,
        "final_loss": round(final_loss, 6),
        "seconds": round(time.perf_counter() - t0, 2),
        "threads": threads,
        "versions": _versions(),
    }
    (d / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info


def _saved_param_count(file: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 (safe_open is not iterable)


def _versions() -> dict:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


# ----------------------------------------------------------------------------- build


def build(out_dir: Path | None = None, *, force: bool = False, progress: bool = True) -> Path:
    """Build tiny-llama into ``out_dir`` (default: ``path()``) unless it is already there;
    returns the directory. ``force`` rebuilds even when a current build exists."""
    digest = fingerprint()
    target = Path(out_dir) if out_dir is not None else cache_root() / f"{NAME}-{digest[:16]}"
    target = target.expanduser().absolute()
    if not force and _is_built(target, digest):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not force and _is_built(target, digest):  # another process built it meanwhile
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            info = _build_into(tmp, digest, progress)
            os.chmod(tmp, 0o755)  # mkdtemp made it 0700
            if target.exists():  # stale or forced: move the old one aside, then swap in
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.rename(target, old / "model")
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"{NAME}: built in {info['seconds']:.1f}s, final loss {info['final_loss']:.4f}", flush=True)
    return target


# ----------------------------------------------------------------------------- benchmark


def benchmark_accuracy(model_dir: Path | str, benchmark: Path = BENCHMARK) -> float:
    """Multiple-choice accuracy on the general benchmark: each choice scored by the summed
    log-likelihood of ``" <choice>"`` after ``"<question> Answer:"``. Chance is 0.25."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    items = [json.loads(line) for line in Path(benchmark).read_text(encoding="utf-8").splitlines()]
    seqs: list[list[int]] = []
    starts: list[int] = []
    for item in items:
        prompt = tokenizer(f"{item['question']} Answer:")["input_ids"]
        for choice in item["choices"]:
            full = tokenizer(f"{item['question']} Answer: {choice}")["input_ids"]
            if full[: len(prompt)] != prompt:
                raise ValueError(f"prompt tokens are not a prefix: {item['question']!r} / {choice!r}")
            seqs.append(full)
            starts.append(len(prompt))
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    scores = [
        sum(logprobs[i, t - 1, s[t]].item() for t in range(start, len(s)))
        for i, (s, start) in enumerate(zip(seqs, starts, strict=True))
    ]
    from runtime.metrics import choice_accuracy

    return choice_accuracy(items, scores)


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.tiny", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--out", type=Path, default=None, help="build here instead of the cache")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--benchmark", action="store_true", help="also print benchmark accuracy")
    args = parser.parse_args(argv)
    d = build(args.out, force=args.force, progress=not args.quiet)
    if args.benchmark:
        print(f"{NAME}: benchmark accuracy {benchmark_accuracy(d):.3f} (chance 0.25)", file=sys.stderr)
    print(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
