"""Feasibility checks: small pure functions of the draft plan, registered under stable codes.

Every check runs on every plan; each returns its findings (severity, code, key path, message,
fix). Memory and budget are checks too. Order of the registry is the order of the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from planner import estimator as est
from planner.ladder import LABELS, order
from schemas.method import TRAIN_KINDS, Dpo, Grpo
from schemas.plan import Finding, Layout

Check = Callable[["Draft", Layout], Iterable[Finding]]  # noqa: F821
CHECKS: dict[str, Check] = {}
GB = est.GB


def check(code: str):
    def register(fn: Check) -> Check:
        if code in CHECKS:
            raise ValueError(f"check code {code!r} registered twice")
        CHECKS[code] = fn
        return fn
    return register


def run_checks(draft, layout: Layout) -> Iterator[Finding]:
    yield from draft.config_findings
    for code, fn in CHECKS.items():
        for finding in fn(draft, layout):
            assert finding.code == code, f"check {code} emitted {finding.code}"
            yield finding


def _f(severity: str, code: str, path: str, message: str, fix: str = "") -> Finding:
    return Finding(severity=severity, code=code, path=path, message=message, fix=fix)  # type: ignore[arg-type]


# ---- customization config -------------------------------------------------------------------

@check("config-gpu-class")
def _gpu_class(d, layout):
    if d.config is None or d.config_source != "explicit":
        return
    gpu = d.spec.inventory.gpu
    cls = d.config.parsed.gpu_class
    if cls not in gpu.classes:
        fitting = [u for u in d.spec.model.urns if u.rsplit("+", 1)[-1] in gpu.classes]
        yield _f("error", "config-gpu-class", "model.config",
                 f"{d.config.urn} is for {cls}-class GPUs; inventory {d.spec.inventory.name} has "
                 f"{gpu.display_name} ({', '.join(gpu.classes)})",
                 f"use {' or '.join(fitting)}" if fitting else "pick an inventory with that GPU class, or "
                 "model.config=null to search a layout")


@check("finetuning-type-unsupported")
def _finetuning_type(d, layout):
    if d.train is None or d.config is None or d.config_source == "foreign" or not d.config.training_options:
        return
    for kind in d.pipeline:
        method = d.train if kind == d.method_kind else None
        tt = method.training_type if method else ("sft" if kind in ("sft", "lora") else kind)
        ft = method.finetuning_type if method else ("lora" if kind == "lora" else "all_weights")
        if d.config.option(tt, ft) is None:
            listed = ", ".join(sorted({f"{o.training_type}/{o.finetuning_type}" for o in d.config.training_options}))
            yield _f("error", "finetuning-type-unsupported", "method.kind" if method else "method.sft_base",
                     f"{d.config.urn} does not list training_type={tt}, finetuning_type={ft} (it lists {listed})",
                     "choose a listed combination (e.g. method=lora), or a model whose config supports it")


# ---- layout ---------------------------------------------------------------------------------

@check("layout-tp-exceeds-node")
def _tp_node(d, layout):
    if d.train is None or layout.source == "none":
        return
    if layout.tensor_parallel > layout.gpus_per_node:
        yield _f("error", "layout-tp-exceeds-node", "layout.tensor_parallel",
                 f"tensor parallel {layout.tensor_parallel} > {layout.gpus_per_node} GPUs per node; TP must stay "
                 "within one node (it all-reduces every layer)",
                 f"set layout.tensor_parallel to at most {layout.gpus_per_node} and use data parallel across nodes "
                 "(layout.sharding=fsdp to shard the model)")


@check("layout-product")
def _product(d, layout):
    if d.train is None or layout.source == "none":
        return
    gpus = layout.nodes * layout.gpus_per_node
    mp = layout.tensor_parallel * layout.pipeline_parallel
    if gpus % mp:
        yield _f("error", "layout-product", "layout",
                 f"TP x PP = {layout.tensor_parallel} x {layout.pipeline_parallel} = {mp} does not divide "
                 f"{layout.nodes} node(s) x {layout.gpus_per_node} GPUs = {gpus}",
                 "make TP x PP x DP equal GPUs per node x nodes")


@check("layout-model-split")
def _model_split(d, layout):
    if d.train is None or layout.source == "none":
        return
    arch = d.spec.model.architecture
    if arch.num_kv_heads % layout.tensor_parallel or arch.num_heads % layout.tensor_parallel:
        yield _f("error", "layout-model-split", "layout.tensor_parallel",
                 f"tensor parallel {layout.tensor_parallel} does not divide {arch.num_heads} attention heads and "
                 f"{arch.num_kv_heads} KV heads of {d.spec.model.name}",
                 "use a TP size that divides the KV heads")
    if arch.num_layers % layout.pipeline_parallel:
        yield _f("warning", "layout-model-split", "layout.pipeline_parallel",
                 f"pipeline parallel {layout.pipeline_parallel} does not divide {arch.num_layers} layers: "
                 "stages are unbalanced", "use a PP size that divides the layer count")


@check("layout-pp-not-executable")
def _pp_executable(d, layout):
    """PP > 1 only where the engine runs it: a pin is refused, a published option was replanned (layout.py)."""
    engine = d.spec.knowledge.engine
    if d.train is None or layout.source == "none" or engine.pipeline_parallel:
        return
    pinned = d.spec.layout.pipeline_parallel
    if pinned is not None and pinned > 1:
        arch, tp = d.spec.model.architecture, layout.tensor_parallel * pinned
        split = "layout.sharding=fsdp"
        if engine.tensor_parallel and tp <= layout.gpus_per_node and not (arch.num_heads % tp or arch.num_kv_heads % tp):
            split = f"layout.tensor_parallel={tp} or {split}"
        yield _f("error", "layout-pp-not-executable", "layout.pipeline_parallel",
                 f"pipeline parallel {pinned}: the runtime has no pipeline schedule (knowledge.engine.pipeline_parallel"
                 f"=false), so every process would hold all {arch.num_layers} layers, not 1/{pinned} of them",
                 f"set layout.pipeline_parallel=1; to split the model use {split}")
    elif d.candidate is not None and d.candidate.note and d.option is not None:
        o = d.option
        yield _f("info", "layout-pp-not-executable", "model.config",
                 f"{d.config.urn} publishes {o.training_type}/{o.finetuning_type} on {o.num_nodes} node(s) x "
                 f"{o.num_gpus} GPUs as TP{o.tensor_parallel_size} x PP{o.pipeline_parallel_size}; the runtime has no "
                 f"pipeline parallel, so the plan runs {d.candidate.note}; memory is estimated for that",
                 "to split it otherwise, pin layout.tensor_parallel and layout.sharding")


@check("layout-sharding-not-executable")
def _sharding_executable(d, layout):
    """Only the sharding levels the runtime runs as themselves (knowledge.engine), so each is priced as it runs."""
    if d.train is None or layout.source == "none":
        return
    engine = d.spec.knowledge.engine
    cpu = d.spec.inventory.gpu.name == "cpu"
    here = engine.shardings(layout.tensor_parallel, cpu)
    for path, value in (("layout.sharding", d.spec.layout.sharding), ("method.sharding", d.train.sharding)):
        if value == "auto" or value in here:
            continue
        nearest = next((s for s in ("zero2", "fsdp") if s in here), "none")
        fix = f"set {path}={nearest}, or auto to let the search choose among {', '.join(here)}"
        if value not in engine.sharding + engine.sharding_at_load:
            yield _f("error", "layout-sharding-not-executable", path,
                     f"sharding {value}: the runtime does not run it; it runs {', '.join(engine.sharding)} "
                     "(knowledge.engine.sharding)", fix)
            return
        if layout.data_parallel > 1:
            where = f"with tensor parallel {layout.tensor_parallel}" if layout.tensor_parallel > 1 else "on CPU"
            yield _f("error", "layout-sharding-not-executable", path,
                     f"sharding {value} {where}: the runtime shards the model as it loads, with FSDP2 resharding "
                     f"after forward, so {value} would run (and use memory) as {nearest} "
                     "(knowledge.engine.sharding_at_load)", fix)
            return


@check("layout-tp-not-executable")
def _tp_executable(d, layout):
    if d.train is None or layout.source == "none" or d.spec.knowledge.engine.tensor_parallel:
        return
    if layout.tensor_parallel > 1:
        path = "layout.tensor_parallel" if d.spec.layout.tensor_parallel else "model.config"
        yield _f("error", "layout-tp-not-executable", path,
                 f"tensor parallel {layout.tensor_parallel}: the runtime does not run it (knowledge.engine."
                 "tensor_parallel=false)", "set layout.tensor_parallel=1; use layout.sharding=fsdp to split the model")


@check("layout-inventory-gpus")
def _inventory(d, layout):
    if d.train is None or layout.source == "none":
        return
    inv = d.spec.inventory
    if layout.gpus_per_node > inv.gpus_per_node or layout.nodes > inv.nodes:
        what = (f"the customization config {d.config.urn} pins {layout.nodes} node(s) x {layout.gpus_per_node} GPUs"
                if d.option is not None and not d.spec.layout.pinned else
                f"the layout needs {layout.nodes} node(s) x {layout.gpus_per_node} GPUs")
        best = d.layout_result.best_search if d.layout_result else None
        if best is not None:
            fix = (f"use an inventory with {layout.nodes} x {layout.gpus_per_node} GPUs, or pin a layout that "
                   f"fits {inv.name}: {best.describe()} (layout.nodes={best.shape.nodes} "
                   f"layout.gpus_per_node={best.shape.gpus_per_node} layout.tensor_parallel={best.shape.tp} "
                   f"layout.pipeline_parallel={best.shape.pp})")
        else:
            fix = (f"use an inventory with {layout.nodes} x {layout.gpus_per_node} {inv.gpu.display_name} or more; "
                   f"no layout on {inv.name} fits this method in memory"
                   + ("" if d.method_kind == "lora" else ": consider method=lora"))
        yield _f("error", "layout-inventory-gpus", "inventory",
                 f"{what}; inventory {inv.name} has {inv.nodes} node(s) x {inv.gpus_per_node} "
                 f"{inv.gpu.display_name}", fix)


@check("layout-batch")
def _batch(d, layout):
    if d.train is None or layout.source == "none":
        return
    unit = layout.micro_batch * layout.data_parallel
    if layout.global_batch % unit:
        yield _f("error", "layout-batch", "method.batch_size",
                 f"global batch {layout.global_batch} does not divide by micro batch {layout.micro_batch} x "
                 f"DP {layout.data_parallel} = {unit}",
                 f"set method.batch_size to a multiple of {unit}")


@check("launcher-multinode")
def _launcher(d, layout):
    from planner.core import resolve_launcher

    kind = resolve_launcher(d.spec)
    if d.train is not None and layout.nodes > 1 and kind in ("local", "torchrun"):
        yield _f("error", "launcher-multinode", "launcher.kind",
                 f"the layout spans {layout.nodes} nodes; the {kind} launcher runs on one machine",
                 "use launcher=slurm, or pin layout.nodes=1")


@check("deadline")
def _deadline(d, layout):
    deadline = d.spec.goal.deadline_hours
    cand = d.candidate
    if d.train is None or deadline is None or cand is None:
        return
    wall = d.wall_hours if d.wall_hours is not None else cand.time.wall_hours
    if wall > deadline:
        yield _f("warning", "deadline", "goal.deadline_hours",
                 f"expected {wall:.1f} wall-hours > the {deadline:g}-hour deadline with "
                 f"{cand.describe()}; {d.spec.inventory.name} has no more GPUs to add",
                 "use a larger inventory, fewer epochs, or relax goal.deadline_hours")


# ---- data -----------------------------------------------------------------------------------

@check("data-root-files")
def _root_files(d, layout):
    if d.stats.root_files:
        files = ", ".join(d.stats.root_files[:5])
        yield _f("error", "data-root-files", "data.path",
                 f"{files} sit in the dataset root, where nothing is read: only training/ and validation/ are "
                 "(the classic 'empty dataset')",
                 "move the training files into training/ and the validation files into validation/")


@check("data-empty")
def _empty(d, layout):
    if d.stats.training.records == 0 and not d.stats.root_files:
        yield _f("error", "data-empty", "data.path",
                 f"no usable records under training/ in {d.spec.data.path}",
                 "add .jsonl files with one JSON record per line under training/")


@check("data-invalid-lines")
def _invalid(d, layout):
    for split in ("training", "validation"):
        stats = getattr(d.stats, split)
        if stats is None or not stats.invalid_total:
            continue
        shown = "; ".join(str(b) for b in stats.invalid[:5])
        more = f" (and {stats.invalid_total - 5} more)" if stats.invalid_total > 5 else ""
        yield _f("error", "data-invalid-lines", "data.path",
                 f"{stats.invalid_total} unusable line(s) in {split}/: {shown}{more}",
                 f"fix or remove those lines; {d.spec.data.format} records need "
                 + _needs(d.spec.data.format if split == "training" or d.spec.data.format != "documents"
                          else "prompt_completion"))


def _needs(fmt: str) -> str:
    from schemas.records import FIELDS

    return ", ".join("/".join(alts) for alts in FIELDS[fmt])


@check("data-validation-split")
def _validation(d, layout):
    if d.stats.validation is None and d.stats.source != "remote":
        lints = d.spec.knowledge.lints
        n = d.stats.training.records
        yield _f("info", "data-validation-split", "data.path",
                 f"no validation/ folder: {lints.holdout_fraction:.0%} of training ({lints.holdout(n)} of {n}) is "
                 "held out for validation",
                 "add validation/*.jsonl to keep all training examples")
    elif d.stats.source == "remote" and d.spec.data.declared and d.spec.data.declared.validation is None:
        yield _f("info", "data-validation-split", "data.declared.validation",
                 f"no validation split declared: {d.spec.knowledge.lints.holdout_fraction:.0%} of training is held "
                 "out", "")


@check("data-format-method")
def _format_method(d, layout):
    if d.train is None:
        return
    fmt = d.spec.data.format
    needed = {"lora": ("prompt_completion", "messages"), "sft": ("prompt_completion", "messages"),
              "dpo": ("preference",), "grpo": ("prompt_answer",)}[d.method_kind]
    if fmt not in needed:
        yield _f("error", "data-format-method", "data.format",
                 f"{LABELS[d.method_kind]} trains on {' or '.join(needed)} records; the data is {fmt}",
                 "use data in that format, or a method that fits the data (method=auto chooses)")


@check("data-floor")
def _floor(d, layout):
    """Every training stage of the pipeline against its method's floors (the SFT base of DPO too)."""
    n = d.stats.examples
    for stage in d.stages:
        floor = d.spec.knowledge.floors[stage.kind]
        label = LABELS[stage.kind]
        where = "" if stage is d.main else f" (the {label} stage before {LABELS[d.method_kind]})"
        batch = stage.layout.global_batch if stage.layout is not None else 0
        hard = max(floor.hard, batch)
        if n < hard:
            why = (f"fewer than one global batch ({batch})" if hard == batch and batch > floor.hard
                   else f"below the hard floor of {floor.hard:,}")
            yield _f("error", "data-floor", "data",
                     f"{n:,} {floor.unit}: {why}; a {label} run{where} cannot learn anything from so little",
                     f"collect at least {floor.soft:,} {floor.unit} ({hard:,} at the very least)")
        elif n < floor.soft:
            yield _f("warning", "data-floor", "data",
                     f"{n:,} {floor.unit}: below the {floor.soft:,} {label}{where} needs to be reliable; expect a "
                     "noisy, partial effect and check the gate closely",
                     f"collect {floor.soft:,}+ {floor.unit} for a production run")


@check("data-quality")
def _quality(d, layout):
    for split in ("training", "validation"):
        s = getattr(d.stats, split)
        if s is None:
            continue
        if s.empty:
            yield _f("warning", "data-quality", "data.path", f"{s.empty} record(s) in {split}/ have empty text fields",
                     "drop or fill them; empty completions teach the model to stop early")
        if s.duplicates:
            yield _f("warning", "data-quality", "data.path", f"{s.duplicates} duplicate record(s) in {split}/",
                     "deduplicate: duplicates overweight those examples and leak into validation")
        if s.same_chosen_rejected:
            yield _f("warning", "data-quality", "data.path",
                     f"{s.same_chosen_rejected} preference pair(s) in {split}/ have chosen == rejected: no signal",
                     "drop those pairs")
        if s.unparsable_answers:
            yield _f("warning", "data-quality", "data.path",
                     f"{s.unparsable_answers} reference answer(s) in {split}/ do not parse as numbers",
                     "fix them, or use a reward other than numeric_match")


# ---- hyperparameters ------------------------------------------------------------------------

def _recommended(d, key: str) -> bool:
    """The value of `key` came from the customization config's recommended recipe, not the user."""
    return d.main is not None and d.main.recipe.sources.get(key) == "recommended"


@check("lint-lora-lr")
def _lora_lr(d, layout):
    t = d.train
    if t is None or t.finetuning_type != "lora":
        return
    limit = d.spec.knowledge.lints.lora_lr_max
    if t.learning_rate >= limit and _recommended(d, "learning_rate"):
        yield _f("info", "lint-lora-lr", "method.learning_rate",
                 f"LoRA learning rate {t.learning_rate:g} >= {limit:g}, as {d.config.urn} recommends for this model",
                 "set method.learning_rate to override it (the rest of the recipe stays)")
    elif t.learning_rate >= limit:
        yield _f("warning", "lint-lora-lr", "method.learning_rate",
                 f"LoRA learning rate {t.learning_rate:g} >= {limit:g}: validation loss typically diverges after "
                 "2-3 epochs", "use 1e-4 (5e-5 if unstable)")


@check("lint-adapter-dim")
def _adapter_dim(d, layout):
    t = d.train
    if t is None or t.finetuning_type != "lora":
        return
    r = t.lora.adapter_dim
    if r & (r - 1):
        lower = 1 << (r.bit_length() - 1)
        yield _f("error", "lint-adapter-dim", "method.lora.adapter_dim",
                 f"adapter_dim {r} is not a power of two", f"use {lower} or {lower * 2}")
    n = d.stats.examples
    for up_to, largest in d.spec.knowledge.lints.adapter_dim_limits:
        if n <= up_to:
            if r > largest:
                yield _f("warning", "lint-adapter-dim", "method.lora.adapter_dim",
                         f"adapter_dim {r} is high for {n:,} examples: the adapter memorises them (overfit)",
                         f"use adapter_dim {min(largest, 16)} or less")
            break


@check("method-override-ignored")
def _ignored(d, layout):
    """method=auto takes any training key; one the chosen rung does not have (or cannot take) is said, not lost."""
    for stage in d.stages:
        for key in stage.recipe.ignored:
            yield _f("warning", "method-override-ignored", key,
                     f"{key} does not apply to {LABELS[stage.kind]} (the {stage.name} stage): not one of its keys, "
                     "or a part of a block with nothing recommended to complete it; ignored",
                     f"drop {key}, or pin the method it belongs to (method=<kind>)")


@check("lora-target-modules")
def _lora_targets(d, layout):
    """LoRA target modules against the family's module names: a typo adapts nothing (0 trainable parameters)."""
    import difflib

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
            yield _f("error", "lora-target-modules", "method.lora.target_modules",
                     f"{module!r} is not a module of {d.spec.model.family} models{hint} (modules: {', '.join(names)})",
                     f"use method.lora.target_modules=[{','.join(valid or [close[0] if close else 'all-linear'])}]"
                     if close or valid else "use method.lora.target_modules=[all-linear]")
        if not wrong and stage.estimate is not None and not stage.estimate.trainable_params:
            yield _f("error", "lora-target-modules", "method.lora.target_modules",
                     f"LoRA on {', '.join(targets)} trains 0 parameters", "use method.lora.target_modules=[all-linear]")


@check("lint-alpha")
def _alpha(d, layout):
    t = d.train
    if t is None or t.finetuning_type != "lora":
        return
    if t.lora.alpha is None:
        yield _f("info", "lint-alpha", "method.lora.alpha",
                 f"alpha defaults to adapter_dim ({t.lora.adapter_dim}): scaling alpha/r = 1", "")
    elif t.lora.alpha != t.lora.adapter_dim:
        yield _f("info", "lint-alpha", "method.lora.alpha",
                 f"alpha {t.lora.alpha} with adapter_dim {t.lora.adapter_dim}: the update is scaled by "
                 f"{t.lora.alpha / t.lora.adapter_dim:g}; changing the rank changes the effective learning rate",
                 "leave alpha null to keep alpha = adapter_dim")


@check("lint-min-lr")
def _min_lr(d, layout):
    t = d.train
    if t is None or t.min_learning_rate is None:
        return
    if t.min_learning_rate >= t.learning_rate:
        yield _f("error", "lint-min-lr", "method.min_learning_rate",
                 f"min_learning_rate {t.min_learning_rate:g} >= learning_rate {t.learning_rate:g}: the schedule "
                 "cannot decay", f"use a min_learning_rate below {t.learning_rate:g} (e.g. {t.learning_rate / 10:g})")


@check("lint-seq-length")
def _seq_length(d, layout):
    t = d.train
    if t is None:
        return
    arch = d.spec.model.architecture
    cap = t.max_seq_length or d.max_seq
    if cap > arch.max_position_embeddings:
        yield _f("error", "lint-seq-length", "method.max_seq_length",
                 f"sequence length {cap:,} > {d.spec.model.name}'s maximum of {arch.max_position_embeddings:,} positions",
                 f"use method.max_seq_length={min(d.max_seq if d.config else arch.max_position_embeddings, arch.max_position_embeddings)}")
    elif d.config and t.max_seq_length and t.max_seq_length > d.config.max_seq_length:
        yield _f("warning", "lint-seq-length", "method.max_seq_length",
                 f"sequence length {t.max_seq_length:,} > the {d.config.max_seq_length:,} that {d.config.urn} was "
                 "validated with", "check memory on a short run first")


@check("data-truncated")
def _truncated(d, layout):
    """The one sequence-length rule: records longer than a stage's max_seq_length are cut; say how many (the
    validate_data stage counts the same with the model's tokenizer)."""
    from planner.resolve import seq_cap, template_tokens, truncated

    if d.prompt is None or d.stats.source == "remote" and d.stats.token_estimate == "none":
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
            fix = (f"set method.max_seq_length={min(positions, -(-int(longest * d.spec.knowledge.estimator.seq_margin) // 8) * 8)}"
                   f" (the model allows {positions:,}; memory grows with it), or shorten or drop those records")
        else:
            fix = f"shorten or split those records: the model reads at most {positions:,} positions"
        yield _f("warning", "data-truncated", "method.max_seq_length",
                 f"{what} of {total:,} training records are longer than max_seq_length {stage.seq:,}{where} "
                 f"(~{longest:,} tokens at the longest, estimated, capped at {cap:,}): the trainer cuts them", fix)


@check("lint-grpo-batch")
def _grpo_batch(d, layout):
    t = d.train
    if not isinstance(t, Grpo):
        return
    g = t.num_generations_per_prompt
    if t.batch_size % g:
        yield _f("error", "lint-grpo-batch", "method.batch_size",
                 f"GRPO global batch {t.batch_size} does not divide by num_generations_per_prompt {g}: TRL fails "
                 "inside the trainer", f"use method.batch_size={max(g, (t.batch_size // g) * g)} or another multiple of {g}")
    prompts = d.stats.examples
    if prompts and prompts * g < t.batch_size:
        yield _f("error", "lint-grpo-batch", "method.batch_size",
                 f"{prompts} prompts x {g} generations < one batch of {t.batch_size}",
                 "lower method.batch_size or add prompts")


@check("lint-steps-per-epoch")
def _steps(d, layout):
    t = d.train
    if t is None or layout.source == "none":
        return
    n = d.stats.examples
    if d.stats.validation is None:
        n -= d.spec.knowledge.lints.holdout(n)
    if n and n // layout.global_batch < 1:
        yield _f("error", "lint-steps-per-epoch", "method.batch_size",
                 f"{n} training examples < global batch {layout.global_batch}: zero optimizer steps per epoch",
                 f"use method.batch_size <= {n}")


@check("lint-dpo-base")
def _dpo_base(d, layout):
    if isinstance(d.train, Dpo) and "sft" in d.pipeline:
        yield _f("info", "lint-dpo-base", "method.sft_base",
                 "DPO refines a model that already knows the task: an SFT stage on the chosen answers runs first",
                 "set method.sft_base to an SFT-tuned model to skip it")


@check("replay-data")
def _replay(d, layout):
    """The replay text must be there when the stages run: a shipped builtin or an existing file (a stat, not a read)."""
    from planner.paths import samples_dir

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
            yield _f("error", "replay-data", "method.replay.data",
                     f"replay text {replay.data!r} does not exist on this machine", fix)


# ---- memory and budget ----------------------------------------------------------------------

@check("memory-fit")
def _memory(d, layout):
    cand = d.candidate
    if d.train is None:
        return
    inv = d.spec.inventory
    capacity = inv.gpu.memory_gb * GB
    usable = capacity * d.spec.knowledge.lints.memory_headroom
    if cand is None:
        yield _f("error", "memory-fit", "inventory", f"no layout on {inv.name} could be evaluated", "")
        return
    total = cand.memory.total
    if total > usable:
        yield _f("error", "memory-fit", "inventory",
                 f"{total / GB:.1f} GB per GPU > {usable / GB:.1f} GB usable ({d.spec.knowledge.lints.memory_headroom:.0%}"
                 f" of {inv.gpu.memory_gb:g} GB {inv.gpu.display_name}) with {cand.describe()}",
                 _smallest_fix(d, cand))
    elif total > capacity * (1 - d.spec.knowledge.lints.headroom_warning):
        yield _f("warning", "memory-fit", "inventory",
                 f"{total / GB:.1f} GB per GPU leaves under {d.spec.knowledge.lints.headroom_warning:.0%} of "
                 f"{inv.gpu.memory_gb:g} GB free", "expect fragmentation OOMs; consider activation checkpointing")
    best = d.layout_result.best_search if d.layout_result else None
    deadline = d.spec.goal.deadline_hours
    if layout.source == "pinned" and d.option is not None and best is not None and total <= usable \
            and best.shape.gpus < cand.shape.gpus and (deadline is None or best.time.wall_hours <= deadline):
        yield _f("info", "memory-fit", "layout",
                 f"the estimate fits in fewer GPUs than {d.config.urn} pins: {best.describe()} "
                 f"({best.memory.total / GB:.0f} GB per GPU, {best.gpu_hours:.1f} GPU-hours against "
                 f"{cand.gpu_hours:.1f})",
                 f"to use it: layout.nodes={best.shape.nodes} layout.gpus_per_node={best.shape.gpus_per_node} "
                 f"layout.tensor_parallel={best.shape.tp} layout.pipeline_parallel={best.shape.pp}")


def _smallest_fix(d, cand) -> str:
    """Name the smallest change that fits, trying one knob at a time."""
    from planner import layout as layout_mod

    inv = d.spec.inventory
    base = layout_mod.Context(arch=d.spec.model.architecture, method=d.train, inventory=inv, stats=d.stats,
                              prior=d.spec.knowledge.estimator, precision=d.precision, seq=cand.shape.seq,
                              headroom=d.spec.knowledge.lints.memory_headroom, engine=d.spec.knowledge.engine)
    s = cand.shape
    trials: list[tuple[str, est.Shape]] = []
    if not s.checkpointing:
        trials.append(("enable activation checkpointing (layout.activation_checkpointing=true)",
                       est.Shape(s.nodes, s.gpus_per_node, s.tp, s.pp, s.micro_batch, s.global_batch, s.seq,
                                 s.sharding, True)))
    if s.micro_batch > 1:
        trials.append(("micro batch 1 (layout.micro_batch=1)",
                       est.Shape(s.nodes, s.gpus_per_node, s.tp, s.pp, 1, s.global_batch, s.seq, s.sharding,
                                 s.checkpointing)))
    engine = d.spec.knowledge.engine
    if s.dp > 1 and s.sharding != "fsdp" and "fsdp" in engine.sharding:
        trials.append(("shard with FSDP (layout.sharding=fsdp)",
                       est.Shape(s.nodes, s.gpus_per_node, s.tp, s.pp, s.micro_batch, s.global_batch, s.seq,
                                 "fsdp", s.checkpointing)))
    for tp in (2, 4, 8):
        if tp > s.tp and tp <= inv.gpus_per_node and engine.tensor_parallel:
            gpn = max(s.gpus_per_node, tp * s.pp if s.nodes == 1 else s.gpus_per_node)
            if gpn <= inv.gpus_per_node:
                trials.append((f"TP={tp} (layout.tensor_parallel={tp} layout.gpus_per_node={gpn})",
                               est.Shape(s.nodes, gpn, tp, s.pp, s.micro_batch, s.global_batch, s.seq, s.sharding,
                                         s.checkpointing)))
    if inv.nodes > s.nodes and "fsdp" in engine.sharding:
        trials.append((f"{inv.nodes} nodes with FSDP (layout.nodes={inv.nodes} layout.sharding=fsdp)",
                       est.Shape(inv.nodes, inv.gpus_per_node, s.tp, s.pp, s.micro_batch, s.global_batch, s.seq,
                                 "fsdp", s.checkpointing)))
    for text, shape in trials:
        if shape.gpus % (shape.tp * shape.pp) or shape.global_batch % (shape.micro_batch * shape.dp):
            continue
        if layout_mod.evaluate(base, shape).fits:
            return text
    if d.train.finetuning_type != "lora" and d.train.optimizer == "adamw":
        import dataclasses

        eight_bit = dataclasses.replace(base, method=d.train.model_copy(update={"optimizer": "adamw_8bit"}))
        for ckpt in (s.checkpointing, True):
            shape = est.Shape(s.nodes, s.gpus_per_node, s.tp, s.pp, s.micro_batch, s.global_batch, s.seq,
                              s.sharding, ckpt)
            if layout_mod.evaluate(eight_bit, shape).fits:
                return "8-bit AdamW (method.optimizer=adamw_8bit" + (
                    " layout.activation_checkpointing=true)" if ckpt and not s.checkpointing else ")")
    frozen = d.spec.model.architecture.total_params * est.weight_bytes(d.precision)
    if frozen > inv.gpu.memory_gb * GB:
        return (f"one {inv.gpu.display_name} cannot hold even the frozen base ({frozen / GB:.0f} GB of weights): "
                "use more GPUs (TP or FSDP), a larger GPU, or a smaller model")
    if d.method_kind != "lora":
        return "use LoRA (method=lora): the frozen base needs 2 bytes per parameter instead of 16"
    return "use a larger GPU or more GPUs"


@check("budget")
def _budget(d, layout):
    budget = d.spec.goal.gpu_hour_budget
    cand = d.candidate
    if d.train is None or budget is None or cand is None:
        return
    hours = d.gpu_hours if d.gpu_hours is not None else cand.gpu_hours
    if hours > budget:
        yield _f("error", "budget", "goal.gpu_hour_budget",
                 f"estimated {hours:.1f} GPU-hours > budget {budget:g}",
                 "raise goal.gpu_hour_budget, train fewer epochs, or use a cheaper rung (method=auto)")


@check("time-limit")
def _time_limit(d, layout):
    cand = d.candidate
    limit = d.spec.inventory.time_limit_hours
    if d.train is None or cand is None or limit is None:
        return
    if cand.time.wall_high > limit:
        yield _f("warning", "time-limit", "inventory.time_limit_hours",
                 f"up to {cand.time.wall_high:.1f} wall-hours > the {limit:g}-hour limit of {d.spec.inventory.name}",
                 "the run resumes from its last checkpoint when requeued; or raise the limit")


# ---- the ladder and consequences ------------------------------------------------------------

@check("ladder-cheaper-rung")
def _cheaper(d, layout):
    requested = d.spec.method.kind
    chosen = d.ladder.choice
    if requested == "auto" or requested == chosen:
        return
    ranks = order(d.spec.knowledge)
    if requested in ranks and chosen in ranks and ranks.index(chosen) < ranks.index(requested):
        yield _f("warning", "ladder-cheaper-rung", "method",
                 f"{LABELS[chosen]} should be tried before {LABELS[requested]}: "
                 + next((r.reason for r in d.ladder.rungs if r.method == chosen), ""),
                 f"try method={chosen} (or method=auto) first")


@check("baseline-first")
def _baseline(d, layout):
    if d.spec.goal.baseline_score is None:
        yield _f("info", "baseline-first", "goal.baseline_score",
                 "no measured baseline: the plan starts with a baseline evaluation; move past prompting only on "
                 "measured eval degradation", "record the measured score in goal.baseline_score")


@check("consequence-serving")
def _serving(d, layout):
    if d.train is None:
        return
    hot = d.spec.goal.serving.hot_swap
    if d.train.finetuning_type == "lora" and d.method_kind in TRAIN_KINDS and "sft" not in d.pipeline:
        yield _f("info", "consequence-serving", "method",
                 "a LoRA adapter hot-swaps into a running multi-LoRA server: no new deployment", "")
    else:
        yield _f("warning" if hot else "info", "consequence-serving", "method",
                 "all weights change: the result needs its own serving deployment"
                 + (" but the goal requires hot-swap into the running server" if hot else ""),
                 "use LoRA to hot-swap" if hot else "")
