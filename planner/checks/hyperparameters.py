"""Checks of the resolved hyperparameters of the training stages: LoRA, learning rates, sequence length and
truncation, batch sizes, overrides that do not apply, the replay text."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path

from planner.checks.base import Group, finding
from planner.draft import Draft
from planner.ladder import LABELS
from planner.paths import samples_dir
from planner.resolve import seq_cap, template_tokens, truncated
from schemas.method import Dpo, Grpo
from schemas.plan import Finding, Layout

check = Group()


def _recommended(d: Draft, key: str) -> bool:
    """The value of `key` came from the customization config's recommended recipe, not the user."""
    return d.main is not None and d.main.recipe.sources.get(key) == "recommended"


@check("lint-lora-lr")
def _lora_lr(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.train
    if t is None or t.finetuning_type != "lora":
        return
    limit = d.spec.knowledge.lints.lora_lr_max
    if t.learning_rate >= limit and d.config is not None and _recommended(d, "learning_rate"):
        yield finding(
            "info",
            "lint-lora-lr",
            "method.learning_rate",
            f"LoRA learning rate {t.learning_rate:g} >= {limit:g}, as {d.config.urn} recommends for this model",
            "set method.learning_rate to override it (the rest of the recipe stays)",
        )
    elif t.learning_rate >= limit:
        yield finding(
            "warning",
            "lint-lora-lr",
            "method.learning_rate",
            f"LoRA learning rate {t.learning_rate:g} >= {limit:g}: validation loss typically diverges after 2-3 epochs",
            "use 1e-4 (5e-5 if unstable)",
        )


@check("lint-adapter-dim")
def _adapter_dim(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.train
    if t is None or t.finetuning_type != "lora":
        return
    r = t.lora.adapter_dim
    if r & (r - 1):
        lower = 1 << (r.bit_length() - 1)
        yield finding(
            "error",
            "lint-adapter-dim",
            "method.lora.adapter_dim",
            f"adapter_dim {r} is not a power of two",
            f"use {lower} or {lower * 2}",
        )
    n = d.stats.examples
    for up_to, largest in d.spec.knowledge.lints.adapter_dim_limits:
        if n <= up_to:
            if r > largest:
                yield finding(
                    "warning",
                    "lint-adapter-dim",
                    "method.lora.adapter_dim",
                    f"adapter_dim {r} is high for {n:,} examples: the adapter memorises them (overfit)",
                    f"use adapter_dim {min(largest, 16)} or less",
                )
            break


@check("method-override-ignored")
def _ignored(d: Draft, layout: Layout) -> Iterator[Finding]:
    """method=auto takes any training key; one the chosen rung does not have (or cannot take) is said, not lost."""
    for stage in d.stages:
        for key in stage.recipe.ignored:
            yield finding(
                "warning",
                "method-override-ignored",
                key,
                f"{key} does not apply to {LABELS[stage.kind]} (the {stage.name} stage): not one of its keys, "
                "or a part of a block with nothing recommended to complete it; ignored",
                f"drop {key}, or pin the method it belongs to (method=<kind>)",
            )


@check("lora-target-modules")
def _lora_targets(d: Draft, layout: Layout) -> Iterator[Finding]:
    """LoRA target modules against the family's module names: a typo adapts nothing (0 trainable parameters)."""
    names = d.spec.knowledge.lora_targets.get(d.spec.model.family)
    for stage in d.stages:
        t = stage.recipe.method
        if t.finetuning_type != "lora" or names is None:
            continue
        targets = t.lora.target_modules
        wrong = [m for m in targets if m != "all-linear" and m not in names]
        for module in wrong:
            close = difflib.get_close_matches(module, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            valid = [m for m in targets if m not in wrong]
            yield finding(
                "error",
                "lora-target-modules",
                "method.lora.target_modules",
                f"{module!r} is not a module of {d.spec.model.family} models{hint} (modules: {', '.join(names)})",
                f"use method.lora.target_modules=[{','.join(valid or [close[0] if close else 'all-linear'])}]"
                if close or valid
                else "use method.lora.target_modules=[all-linear]",
            )
        if not wrong and stage.estimate is not None and not stage.estimate.trainable_params:
            yield finding(
                "error",
                "lora-target-modules",
                "method.lora.target_modules",
                f"LoRA on {', '.join(targets)} trains 0 parameters",
                "use method.lora.target_modules=[all-linear]",
            )


@check("lint-alpha")
def _alpha(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.train
    if t is None or t.finetuning_type != "lora":
        return
    if t.lora.alpha is None:
        yield finding(
            "info",
            "lint-alpha",
            "method.lora.alpha",
            f"alpha defaults to adapter_dim ({t.lora.adapter_dim}): scaling alpha/r = 1",
            "",
        )
    elif t.lora.alpha != t.lora.adapter_dim:
        yield finding(
            "info",
            "lint-alpha",
            "method.lora.alpha",
            f"alpha {t.lora.alpha} with adapter_dim {t.lora.adapter_dim}: the update is scaled by "
            f"{t.lora.alpha / t.lora.adapter_dim:g}; changing the rank changes the effective learning rate",
            "leave alpha null to keep alpha = adapter_dim",
        )


@check("lint-min-lr")
def _min_lr(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.train
    if t is None or t.min_learning_rate is None:
        return
    if t.min_learning_rate >= t.learning_rate:
        yield finding(
            "error",
            "lint-min-lr",
            "method.min_learning_rate",
            f"min_learning_rate {t.min_learning_rate:g} >= learning_rate {t.learning_rate:g}: the schedule "
            "cannot decay",
            f"use a min_learning_rate below {t.learning_rate:g} (e.g. {t.learning_rate / 10:g})",
        )


@check("lint-seq-length")
def _seq_length(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.train
    if t is None:
        return
    arch = d.spec.model.architecture
    cap = t.max_seq_length or d.max_seq
    if cap > arch.max_position_embeddings:
        most = min(d.max_seq if d.config else arch.max_position_embeddings, arch.max_position_embeddings)
        yield finding(
            "error",
            "lint-seq-length",
            "method.max_seq_length",
            f"sequence length {cap:,} > {d.spec.model.name}'s maximum of {arch.max_position_embeddings:,} positions",
            f"use method.max_seq_length={most}",
        )
    elif d.config and t.max_seq_length and t.max_seq_length > d.config.max_seq_length:
        yield finding(
            "warning",
            "lint-seq-length",
            "method.max_seq_length",
            f"sequence length {t.max_seq_length:,} > the {d.config.max_seq_length:,} that {d.config.urn} was "
            "validated with",
            "check memory on a short run first",
        )


@check("data-truncated")
def _truncated(d: Draft, layout: Layout) -> Iterator[Finding]:
    """The one sequence-length rule: records longer than a stage's max_seq_length are cut; say how many (the
    validate_data stage counts the same with the model's tokenizer)."""
    if d.prompt is None or d.stats.token_estimate == "none":
        return
    for stage in d.stages:
        if stage.method.sequence_packing:
            continue  # packing splits long records across rows: nothing is cut
        n, exact = truncated(d.spec, d.stats, stage.seq, d.prompt)
        if not n:
            continue
        total = d.stats.examples
        cap = seq_cap(d.spec, stage.recipe.method, d.config)
        positions = d.spec.model.architecture.max_position_embeddings
        longest = d.stats.training.tokens_max + template_tokens(d.spec, d.prompt)
        what = f"{n:,}" if exact else f"at least {n:,}"
        where = "" if stage is d.main else f" in the {stage.name} stage"
        if longest <= positions:
            margin = d.spec.knowledge.estimator.seq_margin
            fix = (
                f"set method.max_seq_length={min(positions, -(-int(longest * margin) // 8) * 8)}"
                f" (the model allows {positions:,}; memory grows with it), or shorten or drop those records"
            )
        else:
            fix = f"shorten or split those records: the model reads at most {positions:,} positions"
        yield finding(
            "warning",
            "data-truncated",
            "method.max_seq_length",
            f"{what} of {total:,} training records are longer than max_seq_length {stage.seq:,}{where} "
            f"(~{longest:,} tokens at the longest, estimated, capped at {cap:,}): the trainer cuts them",
            fix,
        )


@check("lint-grpo-batch")
def _grpo_batch(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.train
    if not isinstance(t, Grpo):
        return
    g = t.num_generations_per_prompt
    if t.batch_size % g:
        yield finding(
            "error",
            "lint-grpo-batch",
            "method.batch_size",
            f"GRPO global batch {t.batch_size} does not divide by num_generations_per_prompt {g}: TRL fails "
            "inside the trainer",
            f"use method.batch_size={max(g, (t.batch_size // g) * g)} or another multiple of {g}",
        )
    prompts = d.stats.examples
    if prompts and prompts * g < t.batch_size:
        yield finding(
            "error",
            "lint-grpo-batch",
            "method.batch_size",
            f"{prompts} prompts x {g} generations < one batch of {t.batch_size}",
            "lower method.batch_size or add prompts",
        )


@check("lint-steps-per-epoch")
def _steps(d: Draft, layout: Layout) -> Iterator[Finding]:
    t = d.train
    if t is None or layout.source == "none":
        return
    n = d.stats.training.rows  # duplicates too: the trainer steps through every usable record
    if d.stats.validation is None:
        n -= d.spec.knowledge.lints.holdout(n)
    if n and n // layout.global_batch < 1:
        yield finding(
            "error",
            "lint-steps-per-epoch",
            "method.batch_size",
            f"{n} training examples < global batch {layout.global_batch}: zero optimizer steps per epoch",
            f"use method.batch_size <= {n}",
        )


@check("lint-dpo-base")
def _dpo_base(d: Draft, layout: Layout) -> Iterator[Finding]:
    if isinstance(d.train, Dpo) and "sft" in d.pipeline:
        yield finding(
            "info",
            "lint-dpo-base",
            "method.sft_base",
            "DPO refines a model that already knows the task: an SFT stage on the chosen answers runs first",
            "set method.sft_base to an SFT-tuned model to skip it",
        )


@check("replay-data")
def _replay(d: Draft, layout: Layout) -> Iterator[Finding]:
    """The replay text must be there when the stages run: a shipped builtin or an existing file (a stat, not a read)."""
    for method in (stage.recipe.method for stage in d.stages):
        replay = getattr(method, "replay", None)
        if replay is None:
            continue
        if replay.is_builtin:
            name = replay.data.removeprefix("builtin:")
            found = (samples_dir() / name / "corpus.txt").is_file()
            known = sorted(p.parent.name for p in samples_dir().glob("*/corpus.txt"))
            fix = f"use one of: {', '.join('builtin:' + k for k in known)}" if known else "remove method.replay"
        else:
            found = Path(replay.data).is_file()
            fix = "point method.replay.data at an existing .txt (one document per line) or .jsonl ({text}) file"
        if not found:
            yield finding(
                "error",
                "replay-data",
                "method.replay.data",
                f"replay text {replay.data!r} does not exist on this machine",
                fix,
            )
