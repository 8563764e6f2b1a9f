"""Only executable layouts are planned: knowledge.engine says what the runtime runs, the layout search
reads it, a published option with PP > 1 becomes the nearest executable layout (with an info finding),
and a pin outside it is an error at its key (the pins themselves: tests/unit/test_bad_configs.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pytest import param

from planner import estimator as est
from planner import layout as layout_mod
from planner.compose import load
from schemas.base import MAX_NODES
from schemas.data import DataStats, SplitStats
from schemas.knowledge import Engine
from schemas.layout import LayoutRequest
from schemas.method import Dpo, Lora, Sft
from schemas.model import Model, TrainingOption
from tests.unit.helpers import make_plan, run_json

CONF = Path(__file__).resolve().parents[2] / "conf"
MODELS = ["llama-3.1-70b-instruct", "qwen2.5-72b-instruct", "qwen2.5-32b-instruct", "llama-3.1-8b-instruct",
          "gemma-2-9b-it", "mistral-7b-instruct-v0.3"]
INVENTORIES = ["l40s-4", "h100-2node", "a100-40gb-4", "dgx-h100", "h200-1", "local"]
METHODS = [Lora(), Sft(), Sft(batch_size=64), Dpo(batch_size=32)]
STATS = DataStats(source="remote", fingerprint="hand", token_estimate="declared",
                  training=SplitStats(records=2000, tokens_p50=512, tokens_p95=1024, tokens_max=2048,
                                      tokens_total=2000 * 600))
# Runs everything the estimator can price: the search's own enumeration, for the control case.
EVERYTHING = Engine(pipeline_parallel=True, sharding=("none", "zero1", "zero2", "fsdp"),
                    sharding_at_load=("none", "zero1", "zero2", "fsdp"))


def _model(name: str) -> Model:
    return Model.model_validate(yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text()))


@pytest.fixture(scope="module")
def specs():
    return {inv: load(["+goal=tone", f"inventory={inv}"])[0] for inv in INVENTORIES}


def _ctx(spec, model: str, method, engine: Engine | None = None, seq: int = 2048) -> layout_mod.Context:
    cpu = spec.inventory.gpu.name == "cpu"
    return layout_mod.Context(arch=_model(model).architecture, method=method, inventory=spec.inventory, stats=STATS,
                              prior=spec.knowledge.estimator, precision="fp32" if cpu else "bf16-mixed", seq=seq,
                              headroom=spec.knowledge.lints.memory_headroom,
                              engine=engine or spec.knowledge.engine)


def _searched(specs, engine: Engine | None) -> list[tuple[str, bool, layout_mod.Candidate]]:
    """Every layout the search returns (chosen, alternatives) over the sweep: (label, on CPU, candidate)."""
    out = []
    for inv, spec in specs.items():
        cpu = spec.inventory.gpu.name == "cpu"
        for model in MODELS:
            for method in METHODS:
                result = layout_mod.search(_ctx(spec, model, method, engine), LayoutRequest())
                cands = [result.chosen, result.best_search] + [alt for alt, _ in result.alternatives]
                out += [(f"{model} {method.kind} on {inv}: {c.describe()}", cpu, c) for c in cands if c is not None]
    return out


def _not_executable(engine: Engine, searched) -> list[str]:
    return [label for label, cpu, c in searched
            if c.shape.pp > 1 or c.shape.sharding not in engine.shardings(c.shape.tp, cpu)
            or (c.shape.tp > 1 and not engine.tensor_parallel)]


def test_the_search_plans_only_what_the_engine_runs(specs):
    engine = specs["dgx-h100"].knowledge.engine
    assert not engine.pipeline_parallel and "zero1" not in engine.sharding  # what the runtime runs today
    searched = _searched(specs, None)
    assert len(searched) > len(INVENTORIES) * len(MODELS)  # the sweep planned something
    assert _not_executable(engine, searched) == []
    assert {c.shape.sharding for _, _, c in searched} >= {"none", "zero2", "fsdp"}  # the listed levels are searched


def test_a_permissive_engine_would_plan_pp_and_zero1(specs):
    """The control: the same sweep with an engine that runs everything finds PP and zero1 layouts, so the
    test above fails if the search stops reading knowledge.engine."""
    searched = _searched(specs, EVERYTHING)
    assert any(c.shape.pp > 1 for _, _, c in searched)
    assert any(c.shape.sharding == "zero1" for _, _, c in searched)
    assert _not_executable(specs["dgx-h100"].knowledge.engine, searched)


def test_without_tensor_parallel_the_search_shards_instead(specs):
    engine = Engine(tensor_parallel=False)
    result = layout_mod.search(_ctx(specs["dgx-h100"], "llama-3.1-8b-instruct", Sft(), engine), LayoutRequest())
    assert result.chosen is not None and result.chosen.fits
    assert all(c.shape.tp == 1 for c in [result.chosen] + [alt for alt, _ in result.alternatives])


# ---------------------------------------------------------------- a published option with PP > 1

def _option(nodes: int, gpus: int, tp: int, pp: int, kind: str = "all_weights") -> TrainingOption:
    return TrainingOption(training_type="sft", finetuning_type=kind, num_nodes=nodes, num_gpus=gpus,
                          tensor_parallel_size=tp, pipeline_parallel_size=pp)


OPTIONS = [
    # model, inventory, method, option (nodes, GPUs per node, TP, PP), planned (TP, PP, DP, sharding), why
    param("llama-3.1-8b-instruct", "dgx-h100", Sft(), _option(1, 8, 4, 2), (8, 1, 1, "none"), "PP folded into TP",
          id="8b-tp4-pp2-folds-into-tp8"),
    param("gemma-2-2b-it", "dgx-h100", Sft(), _option(1, 8, 4, 2), (4, 1, 2, "fsdp"),
          "TP8 does not divide the attention heads", id="gemma-kv-heads-keep-tp4-shard-dp2"),
    param("llama-3.1-70b-instruct", "h100-2node", Lora(), _option(2, 4, 4, 2, "lora"), (4, 1, 2, "fsdp"),
          "TP8 would cross nodes", id="70b-l40-option-tp-stays-in-node"),
    param("qwen2.5-32b-instruct", "h100-2node", Sft(), _option(2, 8, 4, 2), (4, 1, 4, "fsdp"),
          "TP8 does not fit memory", id="fold-does-not-fit-replicas-do"),
]


@pytest.mark.parametrize("model, inv, method, option, planned, why", OPTIONS)
def test_a_pp_option_becomes_the_nearest_executable_layout(specs, model, inv, method, option, planned, why):
    ctx = _ctx(specs[inv], model, method)
    cand = layout_mod.from_option(ctx, option, LayoutRequest())
    s = cand.shape
    assert (s.tp, s.pp, s.dp, s.sharding) == planned
    assert (s.nodes, s.gpus_per_node) == (option.num_nodes, option.num_gpus)  # the same GPUs
    assert why in cand.note and cand.describe() in cand.note
    assert cand.fits
    # Memory and time are estimated for the layout that runs: no pipeline bubble is priced any more.
    assert (cand.memory, cand.time) == (layout_mod.evaluate(ctx, s).memory, layout_mod.evaluate(ctx, s).time)
    published = est.Shape(option.num_nodes, option.num_gpus, option.tensor_parallel_size,
                          option.pipeline_parallel_size, s.micro_batch, s.global_batch, s.seq, "none", False)
    assert cand.time.wall_hours < layout_mod.evaluate(ctx, published).time.wall_hours


def test_an_option_without_pp_is_taken_as_published(specs):
    cand = layout_mod.from_option(_ctx(specs["dgx-h100"], "llama-3.1-8b-instruct", Sft()), _option(1, 8, 8, 1),
                                  LayoutRequest())
    assert (cand.shape.tp, cand.shape.pp, cand.note) == (8, 1, "")


def test_an_engine_with_pp_keeps_the_published_option(specs):
    ctx = _ctx(specs["dgx-h100"], "llama-3.1-8b-instruct", Sft(), EVERYTHING)
    cand = layout_mod.from_option(ctx, _option(1, 8, 4, 2), LayoutRequest())
    assert (cand.shape.tp, cand.shape.pp, cand.note) == (4, 2, "")


@pytest.mark.parametrize("overrides, layout, published, planned", [
    param(("model=llama-3.1-8b-instruct", "inventory=dgx-h100", "method=sft"), (1, 8, 8, 1, 1),
          "meta/llama-3.1-8b-instruct@v1.0.0+A100 publishes sft/all_weights on 1 node(s) x 8 GPUs as TP4 x PP2",
          "8 GPUs, TP8", id="llama-8b-a100-config"),
    param(("model=gemma-2-2b-it", "inventory=dgx-h100", "method=sft"), (1, 8, 4, 1, 2),
          "google/gemma-2-2b-it@v1.0.0+A100 publishes sft/all_weights on 1 node(s) x 8 GPUs as TP4 x PP2",
          "8 GPUs, TP4, DP2, FSDP", id="gemma-2b-a100-config"),
])
def test_the_plan_says_which_option_it_replanned(overrides, layout, published, planned):
    p = make_plan("+goal=tone", *overrides)
    lay = p.layout
    assert (lay.nodes, lay.gpus_per_node, lay.tensor_parallel, lay.pipeline_parallel, lay.data_parallel) == layout
    assert p.decision.training_option is not None and p.decision.training_option["pipeline_parallel_size"] == 2
    found = [f for f in p.findings if f.code == "layout-pp-not-executable"]
    assert len(found) == 1 and found[0].severity == "info" and found[0].path == "model.config"
    assert published in found[0].message and f"the plan runs {planned}" in found[0].message
    assert p.feasible


def test_a_pp_pin_fails_the_plan_at_its_key(capsys):
    rc, plan, _ = run_json(capsys, "+goal=tone", "model=llama-3.1-8b-instruct", "inventory=dgx-h100", "method=sft",
                           "layout.pipeline_parallel=2")
    assert rc == 1 and plan is not None and not plan["feasible"]
    [found] = [f for f in plan["findings"] if f["code"] == "layout-pp-not-executable"]
    assert (found["severity"], found["path"]) == ("error", "layout.pipeline_parallel")
    assert found["fix"] == "set layout.pipeline_parallel=1; to split the model use layout.tensor_parallel=2 or " \
                           "layout.sharding=fsdp"


def test_the_engine_is_data(capsys):
    """The same pin plans when the knowledge table says the runtime runs pipeline parallel."""
    rc, plan, _ = run_json(capsys, "+goal=tone", "model=llama-3.1-8b-instruct", "inventory=dgx-h100", "method=sft",
                           "layout.pipeline_parallel=2", "knowledge.engine.pipeline_parallel=true")
    assert plan is not None and plan["layout"]["pipeline_parallel"] == 2
    assert not [f for f in plan["findings"] if f["code"] == "layout-pp-not-executable"], plan["findings"]


@pytest.mark.parametrize("sharding, at_load", [
    param(("zero2", "fsdp"), ("none", "fsdp"), id="none-missing"),
    param(("none", "zero2"), ("zero2",), id="none-missing-at-load"),
])
def test_engine_rejects_a_table_without_unsharded(sharding, at_load):
    with pytest.raises(ValueError, match="must list 'none'"):
        Engine(sharding=sharding, sharding_at_load=at_load)


@pytest.mark.parametrize("method", ["lora", "sft"])
def test_a_huge_inventory_searches_no_more_than_a_useful_one(monkeypatch, method):
    """Node counts whose GPUs exceed global batch x TP x PP are never searched: the largest inventory the schema allows
    looks at exactly the node counts a 64-node one does, and picks the same layout."""
    nodes_seen: list[int] = []
    real = layout_mod._gpn_options

    def counting(per_node, nodes):
        nodes_seen.append(nodes)
        return real(per_node, nodes)

    monkeypatch.setattr(layout_mod, "_gpn_options", counting)
    picked = []
    for nodes in (64, MAX_NODES):
        nodes_seen.clear()
        plan = make_plan("+goal=tone", "model=llama-3.1-70b-instruct", f"method={method}", "inventory=h100-2node",
                         f"inventory.nodes={nodes}")
        picked.append((plan.layout.nodes, plan.layout.gpus_per_node, plan.layout.tensor_parallel, len(nodes_seen)))
    assert picked[0] == picked[1]
    assert 0 < picked[0][3] <= 64
