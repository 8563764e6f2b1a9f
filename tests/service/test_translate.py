"""A Customizer body becomes the config the CLI composes (the same Spec as `planner.compose.load` of the printed
overrides), is planned with the same checks, and what the planner says comes back in the API's key paths.
No server, no torch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from planner.compose import load
from planner.service.api import ApiError, JobCreate
from planner.service.planning import EMPTY_DATASET, plan_body, refusal, spec_of
from planner.service.translate import NO_VERSION, api_path, api_text, data_format, resolve_config, translate
from tests.service.conftest import SAMPLES, tutorial_body


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name, sample in (("email-assist", "tone"), ("prefs", "safety_alignment"), ("math", "math_reasoning")):
        shutil.copytree(SAMPLES / sample, tmp_path / "default" / name)
    (tmp_path / "default" / "flat").mkdir()
    shutil.copy(SAMPLES / "tone" / "training" / "tone.jsonl", tmp_path / "default" / "flat")
    return tmp_path


def body(**kw) -> JobCreate:
    return JobCreate.model_validate(tutorial_body(**kw))


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(tutorial_body(), id="tutorial-lora"),
        pytest.param(tutorial_body(finetuning_type="all_weights", learning_rate=3e-5, lora=None), id="sft-all"),
        pytest.param(tutorial_body(finetuning_type="lora_merged", seed=7, warmup_steps=3), id="lora-merged"),
        pytest.param(
            tutorial_body(
                dataset="prefs", training_type="dpo", lora=None, learning_rate=5e-06, dpo={"ref_policy_kl_penalty": 0.2}
            ),
            id="dpo",
        ),
        pytest.param(
            tutorial_body(dataset="math", training_type="grpo", lora=None, grpo={"num_generations_per_prompt": 4}),
            id="grpo",
        ),
        pytest.param({**tutorial_body(), "goal": "tone", "namespace": "team-a"}, id="named-goal"),
    ],
)
def test_the_body_composes_the_config_the_cli_would(root, payload):
    t = translate(JobCreate.model_validate(payload), root, "local")
    cli_spec, _ = load(t.cli())
    assert spec_of(t) == cli_spec


def test_hyperparameters_land_on_the_method_and_the_dataset_on_data(root):
    spec = spec_of(
        translate(body(dataset="prefs", training_type="dpo", dpo={"ref_policy_kl_penalty": 0.2}), root, "local")
    )
    assert spec.method.kind == "dpo" and spec.method.beta == 0.2 and spec.method.epochs == 2
    assert spec.method.finetuning_type == "lora" and spec.method.lora.adapter_dim == 8
    assert spec.data.path == str(root / "default" / "prefs") and spec.data.format == "preference"
    assert spec.model.config == "local/tiny-llama@v1.0.0+CPU" and spec.inventory.name == "local"
    assert spec.goal.metric == "preference_accuracy" and spec.goal.target_score is None


@pytest.mark.parametrize("urn", ["tiny-llama", "local/tiny-llama", "tiny-llama+CPU", "local/tiny-llama+CPU"])
def test_a_urn_without_a_version_is_customizers_400(urn):
    with pytest.raises(ApiError) as err:
        resolve_config(urn)
    assert (err.value.status_code, err.value.detail) == (400, NO_VERSION)


def test_a_urn_is_found_with_or_without_its_namespace_and_gpu_class():
    assert resolve_config("tiny-llama@v1.0.0+CPU").config.urn == "local/tiny-llama@v1.0.0+CPU"
    assert resolve_config("local/tiny-llama@v1.0.0").config.urn == "local/tiny-llama@v1.0.0+CPU"
    with pytest.raises(ApiError) as err:
        resolve_config("meta/llama-3.1-8b-instruct@v9.9.9+A100")
    assert err.value.status_code == 422
    [f] = err.value.detail
    assert f["path"] == "config" and "meta/llama-3.1-8b-instruct@v1.0.0+A100" in f["fix"]


def test_an_infeasible_plan_is_refused_with_findings_in_the_apis_terms(root):
    planned = plan_body(
        body(config="meta/llama-3.1-70b-instruct@v1.0.0+A100", finetuning_type="all_weights"), root, "local"
    )
    assert not planned.plan.feasible
    err = refusal(planned)
    assert err.status_code == 422
    errors = [f for f in err.detail if f["severity"] == "error"]
    assert errors and all(f["fix"] for f in errors)
    assert all(f["loc"][0] == "body" and not f["path"].startswith(("method", "model.", "data.")) for f in err.detail)


def test_a_value_out_of_bounds_names_the_request_key(root):
    with pytest.raises(ApiError) as err:
        plan_body(body(learning_rate=50.0, lora={"adapter_dim": 0}), root, "local")
    paths = {f["path"]: f for f in err.value.detail}
    assert err.value.status_code == 422
    assert {"hyperparameters.learning_rate", "hyperparameters.lora.adapter_dim"} <= set(paths)
    assert "hyperparameters.lora.adapter_dim" in paths["hyperparameters.lora.adapter_dim"]["fix"]


def test_files_in_the_dataset_root_give_the_empty_dataset_error_and_the_fix(root):
    planned = plan_body(body(dataset="flat"), root, "local")
    first = refusal(planned).detail[0]
    assert first["path"] == "dataset" and first["msg"].startswith(EMPTY_DATASET)
    assert "tone.jsonl" in first["msg"] and "default/flat/training/" in first["fix"]


def test_a_missing_dataset_says_where_it_was_looked_for(root):
    with pytest.raises(ApiError) as err:
        translate(body(dataset="nope"), root, "local")
    assert err.value.status_code == 422 and str(root / "default" / "nope") in err.value.detail[0]["msg"]


def test_keys_customizer_has_and_we_cannot_honour(root):
    with pytest.raises(ApiError) as err:
        translate(body(dataset="prefs", training_type="dpo", dpo={"preference_average_log_probs": True}), root, "local")
    assert err.value.detail[0]["path"] == "hyperparameters.dpo.preference_average_log_probs"
    t = translate(body(log_every_n_steps=5), root, "local")
    assert t.warnings and "log_every_n_steps" in t.warnings[0][0]
    with pytest.raises(ApiError):
        translate(body(training_type="distillation"), root, "local")


@pytest.mark.parametrize(
    "config_path, kind, expected",
    [
        ("method.lora.adapter_dim", "lora", "hyperparameters.lora.adapter_dim"),
        ("method.beta", "dpo", "hyperparameters.dpo.ref_policy_kl_penalty"),
        ("method.kl_beta", "grpo", "hyperparameters.grpo.ref_policy_kl_penalty"),
        ("method.sequence_packing", "lora", "hyperparameters.sequence_packing_enabled"),
        ("method", "lora", "hyperparameters"),
        ("model.config", "lora", "config"),
        ("data.path", "lora", "dataset"),
        ("inventory.gpu", "lora", "inventory.gpu"),
    ],
)
def test_config_paths_become_request_paths(config_path, kind, expected):
    assert api_path(config_path, kind) == expected


def test_texts_name_the_request_keys():
    text = "set method.learning_rate=5e-5 (method.lora.alpha too); data.path is empty; model.config"
    assert api_text(text, "lora") == (
        "set hyperparameters.learning_rate=5e-5 (hyperparameters.lora.alpha too); dataset is empty; config"
    )


def _shipped_formats() -> list[tuple[str, str]]:
    out = []
    for path in sorted((SAMPLES.parent / "data").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if str(data.get("path", "")).startswith("builtin:"):
            out.append((data["path"].removeprefix("builtin:"), data["format"]))
    assert len(out) >= 8, "the glob found too few shipped datasets"
    return out


@pytest.mark.parametrize("sample, fmt", _shipped_formats())
def test_the_data_format_is_read_from_the_first_record(sample, fmt):
    assert data_format(SAMPLES / sample) == fmt
