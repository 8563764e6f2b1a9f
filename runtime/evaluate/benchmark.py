"""The general benchmark of the forgetting check: ``builtin:<name>`` (the shipped multiple-choice file) scored by
log-likelihood as runtime.tiny.benchmark_accuracy does; a path to a task YAML (absolute in the plan) is a local
lm-evaluation-harness task or group, read offline; any other name is a task of lm_eval's registry (mmlu, arc_easy),
whose data comes from the Hugging Face Hub or its datasets cache. An lm_eval benchmark that cannot run (lm_eval not
installed, its data out of reach, no accuracy metric) fails the stage with the fix: the gate could not judge
forgetting without it, so a baseline evaluation stops before anything trains."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from runtime import metrics as metrics_mod
from runtime.context import RunContext, StageFailed
from runtime.evaluate.scoring import continuation_logprobs
from schemas.method import TRAIN_KINDS
from schemas.plan import Evaluation


def multiple_choice_correct(ctx: RunContext, model: Any, tok: Any, items: list[dict], max_len: int) -> list[int]:
    """1 or 0 per item: each choice scored by the summed log-likelihood of " <choice>" after "<question> Answer:"."""
    pairs = [(f"{item['question']} Answer:", f" {choice}") for item in items for choice in item["choices"]]
    return metrics_mod.choice_correct(items, continuation_logprobs(ctx, model, tok, pairs, max_len))


def general(
    ctx: RunContext, ev: Evaluation, model: Any, tok: Any, max_len: int, *, tuned: bool
) -> tuple[float | None, int, str | None, list[int] | None]:
    """(score, items scored, note, right/wrong per item in the benchmark's order or None) of the forgetting check's
    benchmark; the gate pairs the per-item results of the baseline and the tuned model."""
    plan = ctx.plan
    bench, cap = ev.general_benchmark, ev.max_examples
    if tuned and plan.decision.method not in TRAIN_KINDS:
        return None, 0, f"not run: a {plan.decision.method} plan does not change the weights", None
    if ev.general_benchmark_path is not None:
        path = Path(ev.general_benchmark_path)
        if not path.is_file():
            raise StageFailed(f"eval.general_benchmark {bench!r}: no {path}; use builtin:general or an lm_eval task")
        items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        items = items[:cap] if cap else items
        correct = multiple_choice_correct(ctx, model, tok, items, max_len)
        return sum(correct) / len(correct), len(items), None, correct
    return _lm_eval(model, tok, bench, cap)


LOCAL_TASK = (".yaml", ".yml")
ACCURACY = ("acc,none", "acc_norm,none", "exact_match,strict-match", "exact_match,none")


def _lm_eval(
    model: Any, tok: Any, task: str, limit: int | None
) -> tuple[float | None, int, str | None, list[int] | None]:
    """An lm-evaluation-harness task or group on the loaded model: its accuracy under the task's own name (a local
    YAML's `task:` or `group:`, not the path it was given by), the items scored, and per-item 0/1 from the logged
    samples of its tasks (a group's leaf tasks in its order, each in doc_id order)."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise StageFailed(
            f"eval.general_benchmark={task!r} is an lm-evaluation-harness task and lm_eval is not installed here: "
            "pip install 'ladder-planner[eval]' (or pip install lm-eval), or set eval.general_benchmark=builtin:general"
        ) from None
    local = Path(task) if task.endswith(LOCAL_TASK) else None
    if local is not None:
        if not local.is_file():
            raise StageFailed(f"eval.general_benchmark: no task file {local}; re-plan with the path of a task YAML")
        # the YAML's folder is indexed on its own (its tasks and groups; not lm_eval's registry, whose index takes
        # ~10 s to build), and relative data_files are read from there
        name, group = local_task_name(local)
        manager, folder = TaskManager(include_path=str(local.parent), include_defaults=False), local.parent
        if group and local.suffix != ".yaml":
            raise StageFailed(
                f"eval.general_benchmark: {local} is an lm_eval group, which lm_eval finds only in a .yaml file (it "
                f"indexes *.yaml): rename it to {local.with_suffix('.yaml').name} (and its member tasks' files) "
                "and re-plan"
            )
        # a task by its file (any name); a group by its name, from the folder's index (lm_eval 0.4.13 cannot load a
        # group from its path)
        spec = name if group else str(local)
    else:
        name, manager, folder, spec = task, TaskManager(), Path.cwd(), task
    try:
        with _working_dir(folder):
            results = simple_evaluate(
                model=HFLM(pretrained=model, tokenizer=tok, batch_size=8),
                tasks=[spec],
                task_manager=manager,
                limit=limit,
                log_samples=True,
                bootstrap_iters=0,  # the gate's own paired bootstrap gives the interval
            )
    except ConnectionError as exc:
        offline = any(os.environ.get(v, "") not in ("", "0") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
        reach = "this machine is set not to reach (HF_HUB_OFFLINE)" if offline else "this machine cannot reach"
        raise StageFailed(
            f"lm_eval task {name!r} reads its dataset from the Hugging Face Hub, which {reach}, and the datasets "
            f"cache does not hold it ({exc}): run the evaluation once where the Hub is reachable (the cache, "
            "HF_DATASETS_CACHE, then serves it offline), or use a local task YAML (eval.general_benchmark=<path>.yaml) "
            "or builtin:general"
        ) from None
    except FileNotFoundError as exc:
        raise StageFailed(
            f"lm_eval task {name!r}: {exc}; relative paths in a task YAML are read from its folder ({folder})"
        ) from None
    except KeyError as exc:
        raise StageFailed(
            f"lm_eval has no task {name!r} ({exc}): give a name lm_eval lists (lm-eval ls tasks), the path of a task "
            "YAML, or builtin:general"
        ) from None
    except Exception as exc:  # the harness's own errors (a malformed task, a metric it cannot compute)
        raise StageFailed(f"lm_eval task {name!r} failed: {type(exc).__name__}: {exc}") from None
    reported = (results or {}).get("results", {})
    found = reported.get(name)
    if found is None:
        raise StageFailed(f"lm_eval reported no results for {name!r} (it reported {sorted(reported)})")
    leaves = leaf_tasks(results, name)
    for key in ACCURACY:
        if isinstance(found.get(key), (int, float)):
            n = sum(int((results.get("n-samples", {}).get(leaf) or {}).get("effective", 0)) for leaf in leaves)
            metric = key.split(",")[0]
            return float(found[key]), n, f"lm_eval {name} {metric}", _lm_eval_items(results, leaves, metric)
    raise StageFailed(
        f"lm_eval task {name!r} reported no accuracy metric ({', '.join(ACCURACY)}); it reported {sorted(found)}: "
        "give the task an acc metric (metric_list: [{metric: acc}]) or choose another benchmark"
    )


@contextlib.contextmanager
def _working_dir(folder: Path) -> Iterator[None]:
    """Run in `folder` (lm_eval reads a task's relative data_files from the working directory)."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


class _AnyTag(yaml.SafeLoader):
    """Reads an lm_eval task YAML for its name: its tags (!function ...) are read as nothing."""


_AnyTag.add_multi_constructor("!", lambda loader, suffix, node: None)


def local_task_name(path: Path) -> tuple[str, bool]:
    """(name, is a group) of a task YAML: the name it registers and lm_eval reports its results under, `task:` for a
    task, `group:` for a group (whose `task:` lists its members)."""
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_AnyTag)
    except (OSError, yaml.YAMLError) as exc:
        raise StageFailed(f"eval.general_benchmark: cannot read the task file {path}: {exc}") from None
    config = config if isinstance(config, dict) else {}
    if isinstance(config.get("task"), str) and config["task"]:
        return config["task"], False
    if isinstance(config.get("group"), str) and config["group"]:
        return config["group"], True
    raise StageFailed(
        f"eval.general_benchmark: {path} names no task: an lm_eval task YAML has `task: <name>` (or a group, "
        "`group: <name>` with `task: [<members>]`)"
    )


def leaf_tasks(results: dict, name: str) -> list[str]:
    """The tasks under `name` whose samples were scored: itself, or a group's members, recursively, in its order."""
    members = (results.get("group_subtasks") or {}).get(name)
    if not members:
        return [name]
    return [leaf for member in members for leaf in leaf_tasks(results, member)]


def _lm_eval_items(results: dict, leaves: list[str], metric: str) -> list[int] | None:
    """The 0/1 per document of lm_eval's logged samples, task by task, each in doc_id order; None when they do not
    carry the metric as 0/1."""
    out: list[int] = []
    for leaf in leaves:
        samples = (results.get("samples") or {}).get(leaf) or []
        values = [(s.get("doc_id"), s.get(metric)) for s in samples if isinstance(s, dict)]
        if not values or any(v not in (0, 1, 0.0, 1.0, True, False) for _, v in values):
            return None
        out += [int(v or 0) for _, v in sorted(values, key=lambda dv: dv[0] if isinstance(dv[0], int) else 0)]
    return out
