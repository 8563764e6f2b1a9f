"""baseline_eval / eval on the tiny model, and the gate's exit codes on synthetic scores and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.helpers import read_json as _json
from tests.runtime.helpers import run_stage as _run
from tests.runtime.helpers import write_bundle

pytestmark = pytest.mark.runtime



def _bundle(root: Path, *overrides: str) -> Path:
    return write_bundle(root, *overrides)


@pytest.fixture(scope="module")
def tone(tmp_path_factory, tiny_dir) -> Path:
    """A tone LoRA bundle whose baseline_eval has run."""
    bundle = _bundle(tmp_path_factory.mktemp("tone"), "+goal=tone")
    assert _run(bundle, "baseline_eval") == 0
    return bundle


# ----------------------------------------------------------------------------- evaluation


def test_baseline_eval_writes_scores(tone, tiny_dir):
    from runtime.tiny import benchmark_accuracy

    scores = _json(tone / "run/baseline_eval/scores.json")
    assert scores["metric"] == "rouge_l" and scores["role"] == "baseline"
    assert scores["n_examples"] == 50  # the shipped validation split
    assert 0.0 <= scores["task_score"] <= 1.0
    assert scores["general_benchmark"] == "builtin:general" and scores["n_general"] == 100
    # the same multiple-choice scoring as runtime.tiny.benchmark_accuracy
    assert scores["general_score"] == pytest.approx(benchmark_accuracy(tiny_dir))
    assert len(scores["examples"]) == 5
    assert set(scores["examples"][0]) == {"prompt", "output", "reference", "score"}
    assert scores["seconds"] < 30
    assert _json(tone / "run/baseline_eval/status.json")["state"] == "completed"
    predictions = (tone / "run/baseline_eval/predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 50


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_eval_loads_the_trained_adapter(tone, tmp_path):
    import shutil

    from peft import LoraConfig, get_peft_model

    from runtime.models import load_model
    from schemas.plan import Plan

    bundle = tmp_path / tone.name
    shutil.copytree(tone, bundle)
    plan = Plan.model_validate_json((bundle / "plan.json").read_text())
    assert _run(bundle, "eval") == 1  # no adapter yet
    assert "no trained adapter" in _json(bundle / "run/eval/status.json")["error"]

    model = get_peft_model(load_model(plan), LoraConfig(r=4, lora_alpha=4, target_modules="all-linear",
                                                        init_lora_weights=False, task_type="CAUSAL_LM"))
    model.save_pretrained(bundle / plan.artifacts.adapter_dir)
    assert _run(bundle, "eval") == 0
    scores = _json(bundle / "run/eval/scores.json")
    assert scores["role"] == "tuned" and scores["model"].endswith("adapter run/train/adapter")
    assert scores["general_score"] is not None and scores["n_examples"] == 50
    baseline = _json(bundle / "run/baseline_eval/scores.json")
    assert [e["prompt"] for e in scores["examples"]] == [e["prompt"] for e in baseline["examples"]]


def test_max_examples_caps_and_label_metric(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "+goal=legal_classification", "eval.max_examples=7")
    assert _run(bundle, "baseline_eval") == 0
    scores = _json(bundle / "run/baseline_eval/scores.json")
    assert scores["metric"] == "macro_f1" and scores["n_examples"] == 7 and scores["n_general"] == 7


def test_preference_data_is_scored_by_log_probs(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "+goal=safety_alignment", "eval.max_examples=10")
    assert _run(bundle, "baseline_eval") == 0
    scores = _json(bundle / "run/baseline_eval/scores.json")
    assert scores["metric"] == "preference_accuracy" and scores["n_examples"] == 10
    assert scores["examples"][0]["output"].startswith("log p per token: chosen")
    rows = (bundle / "run/baseline_eval/predictions.jsonl").read_text().splitlines()
    assert scores["task_score"] * 10 == pytest.approx(sum(json.loads(line)["score"] for line in rows))


def test_preference_scores_are_per_token(tiny_dir):
    """A summed log-prob favours the shorter answer; the per-token mean is the sum over the token count."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from runtime.evaluate import scoring

    class _Ctx:
        stop_requested = False

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    pairs = [("Customer: where is my order?\nAssistant:\n", " I am sorry for the wait. We will email you the "
              "tracking details today."), ("Customer: where is my order?\nAssistant:\n", " Look it up yourself.")]
    summed = scoring.continuation_logprobs(_Ctx(), model, tok, pairs, 256)
    mean = scoring.continuation_logprobs(_Ctx(), model, tok, pairs, 256, per_token=True)
    for (head, cont), s, m in zip(pairs, summed, mean):
        n = len(scoring.split_ids(tok, head, cont)[1])
        assert n > 1 and m == pytest.approx(s / n)
    assert summed[1] > summed[0]  # the curt answer wins on the sum only because it is shorter


def test_rag_retrieves_the_right_document(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "+goal=product_knowledge", "method=rag", "eval.max_examples=5")
    assert _run(bundle, "baseline_eval") == 0 and _run(bundle, "eval") == 0
    base = [json.loads(x) for x in (bundle / "run/baseline_eval/predictions.jsonl").read_text().splitlines()]
    tuned = [json.loads(x) for x in (bundle / "run/eval/predictions.jsonl").read_text().splitlines()]
    assert "Context:" not in base[0]["input"]
    from planner.paths import samples_dir
    from runtime.data import read_split

    titles = [d["title"] for d in read_split(samples_dir() / "product_knowledge", "training", "documents")]
    for row in tuned:  # "What is the Cedar Headlamp made of?" -> the Cedar Headlamp's document comes first
        product = next(t for t in titles if t in row["prompt"])
        first = row["input"].split("Context:\n", 1)[1].split("\n")[0]
        assert first.startswith(f"The {product} is"), (row["prompt"], first)
    assert _json(bundle / "run/eval/scores.json")["prompting"].startswith("BM25 top-4")
    assert _json(bundle / "run/eval/scores.json")["general_score"] is None


def test_prompting_uses_few_shot_examples_from_training(tmp_path, tiny_dir):
    bundle = _bundle(tmp_path, "+goal=support_format", "method=prompting", "method.few_shot=2",
                     "eval.max_examples=4")
    assert _run(bundle, "baseline_eval") == 0 and _run(bundle, "eval") == 0
    base = [json.loads(x) for x in (bundle / "run/baseline_eval/predictions.jsonl").read_text().splitlines()]
    tuned = [json.loads(x) for x in (bundle / "run/eval/predictions.jsonl").read_text().splitlines()]
    assert all(b["input"].count("Steps:") == 0 for b in base)
    assert all(t["input"].count("Steps:") == 2 for t in tuned)
    assert all(t["input"].endswith(b["input"]) for b, t in zip(base, tuned))  # same template for the question


# ----------------------------------------------------------------------------- gate


def _scores(bundle: Path, stage: str, task: float, general: float | None, plan_id: str) -> None:
    path = bundle / "run" / stage / "scores.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "plan_id": plan_id, "metric": "rouge_l", "task_score": task, "general_score": general, "n_examples": 50,
        "general_benchmark": "builtin:general", "role": "baseline" if stage == "baseline_eval" else "tuned",
        "examples": [{"prompt": "From: Ann\nHi\nReply:\n", "output": "Dear Ann," if stage == "eval" else "x",
                      "reference": "Dear Ann,", "score": 1.0 if stage == "eval" else 0.0}],
    }))


def _metrics(bundle: Path, val: list[float]) -> None:
    path = bundle / "run/train/metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(1, 10 * len(val) + 1):
        lines.append({"kind": "step", "step": i, "epoch": i / 10, "train_loss": 3.0 - 0.02 * i, "val_loss": None,
                      "learning_rate": 1e-4})
        if i % 10 == 0:
            lines.append({"kind": "epoch", "step": i, "epoch": i // 10, "train_loss": 3.0 - 0.02 * i,
                          "val_loss": val[i // 10 - 1], "learning_rate": 1e-4})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.fixture
def lora_bundle(tmp_path) -> tuple[Path, str]:
    bundle = _bundle(tmp_path, "+goal=tone", "goal.target_score=0.5")
    return bundle, _json(bundle / "plan.json")["id"]


def test_gate_passes_and_writes_reports(lora_bundle):
    bundle, pid = lora_bundle
    _scores(bundle, "baseline_eval", 0.1, 0.64, pid)
    _scores(bundle, "eval", 0.7, 0.63, pid)
    _metrics(bundle, [2.9, 2.6, 2.4, 2.3, 2.25])
    assert _run(bundle, "gate") == 0
    gate = _json(bundle / "run/gate/gate.json")
    assert gate["verdict"] == "pass"
    assert gate["general"] == {"benchmark": "builtin:general", "baseline": 0.64, "tuned": 0.63, "drop_points": 1.0,
                               "threshold_points": 2.0}
    assert {c["name"] for c in gate["checks"]} == {"improvement", "target", "forgetting", "curves"}
    assert (bundle / "run/gate/curves.png").read_bytes()[:4] == b"\x89PNG"
    page = (bundle / "run/gate/report.html").read_text()
    assert "data:image/png;base64," in page and "PASS" in page and "Dear Ann," in page
    assert "# Gate: PASS" in (bundle / "run/gate/report.md").read_text()
    assert _json(bundle / "run/gate/status.json")["state"] == "completed"


def test_gate_fails_on_overfit_curves(lora_bundle):
    bundle, pid = lora_bundle
    _scores(bundle, "baseline_eval", 0.1, 0.64, pid)
    _scores(bundle, "eval", 0.7, 0.64, pid)
    _metrics(bundle, [2.5, 2.2, 2.0, 2.1, 2.2, 2.4])
    assert _run(bundle, "gate") == 1
    status = _json(bundle / "run/gate/status.json")
    assert status["state"] == "failed"
    assert "try lr 5e-5 and a smaller adapter_dim" in status["error"]
    gate = _json(bundle / "run/gate/gate.json")
    assert gate["verdict"] == "fail" and [d["code"] for d in gate["diagnostics"] if d["severity"] == "error"] == \
        ["overfit"]


def test_gate_fails_on_forgetting_and_missing_target(lora_bundle):
    bundle, pid = lora_bundle
    _scores(bundle, "baseline_eval", 0.1, 0.64, pid)
    _scores(bundle, "eval", 0.3, 0.55, pid)
    _metrics(bundle, [2.9, 2.6, 2.4])
    assert _run(bundle, "gate") == 1
    gate = _json(bundle / "run/gate/gate.json")
    assert {c["name"] for c in gate["checks"] if not c["passed"]} == {"target", "forgetting"}
    assert gate["general"]["drop_points"] == 9.0


def test_gate_fails_without_scores(lora_bundle):
    bundle, _ = lora_bundle
    assert _run(bundle, "gate") == 1
    assert "run the baseline_eval stage first" in _json(bundle / "run/gate/status.json")["error"]


def test_gate_for_a_prompting_plan_needs_no_training_metrics(tmp_path):
    bundle = _bundle(tmp_path, "+goal=support_format", "method=prompting", "goal.target_score=0.3")
    pid = _json(bundle / "plan.json")["id"]
    _scores(bundle, "baseline_eval", 0.1, 0.64, pid)
    _scores(bundle, "eval", 0.4, None, pid)
    assert _run(bundle, "gate") == 0
    gate = _json(bundle / "run/gate/gate.json")
    assert gate["diagnostics"] == [] and not (bundle / "run/gate/curves.png").exists()
