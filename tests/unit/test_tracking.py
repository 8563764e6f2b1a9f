"""tracking=none|tensorboard|mlflow|wandb: the config group, the schema's rules, what plan.json carries (resolved,
outside the plan id), the planner's warning when a backend's package is missing here, and the runtime's error when
it is missing where a stage runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest import param

from planner.compose import load
from planner.errors import ConfigError
from planner.paths import group_options
from schemas.tracking import INSTALL, KEYS, REPORT_TO
from tests.unit.helpers import make_plan, run_json

TINY = ("+goal=tone", "model=tiny-llama", "inventory=local")


@pytest.fixture(scope="module")
def base():
    """tiny-llama's tone plan without tracking."""
    return make_plan(*TINY)


def test_the_group_offers_every_backend_and_defaults_to_none(base):
    assert set(group_options("tracking")) == set(KEYS) == {"none", "tensorboard", "mlflow", "wandb"}
    assert set(REPORT_TO) == set(KEYS) - {"none"}
    plan = base
    assert plan.spec.tracking.backend == "none" and plan.tracking is None
    assert "tracking" not in json.loads(plan.model_dump_json())["spec"]  # plan.json reads as before tracking existed


@pytest.mark.parametrize(
    "backend, extra",
    [
        param("tensorboard", {"tensorboard": "tensorboard"}, id="tensorboard"),
        param("mlflow", {"mlflow": "mlflow-skinny", "sqlalchemy": "SQLAlchemy", "alembic": "alembic"}, id="mlflow"),
        param("wandb", {"wandb": "wandb"}, id="wandb"),
    ],
)
def test_plan_json_carries_the_resolved_tracking_under_the_same_plan_id(base, backend, extra):
    plan = make_plan(*TINY, f"tracking={backend}")
    assert plan.id == base.id and plan.name == base.name  # tracking observes the run: same bundle, same stages
    assert plan.stages == base.stages and plan.findings == base.findings
    t = plan.tracking
    assert t is not None and t.backend == backend and t.report_to == backend
    assert t.run_name == plan.name  # the run is named after the bundle
    assert t.dir == f"run/tracking/{backend}"  # inside the bundle: nothing lost, nothing in the working folder
    assert t.packages == extra
    assert (t.experiment, t.project) == (
        ("tone", None) if backend == "mlflow" else (None, "tone") if backend == "wandb" else (None, None)
    )
    assert t.mode == ("offline" if backend == "wandb" else None)
    # the runtime reads it back from plan.json
    from schemas.plan import Plan

    assert Plan.model_validate_json(plan.model_dump_json()).tracking == t


def test_settings_resolve_and_a_relative_dir_is_the_planners_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = make_plan(*TINY, "tracking=mlflow", "tracking.dir=logs/ml", "tracking.experiment=team tone")
    assert plan.tracking.dir == str(tmp_path / "logs/ml") and plan.tracking.experiment == "team tone"
    remote = make_plan(*TINY, "tracking=mlflow", "tracking.uri=http://mlflow.internal:5000")
    assert remote.tracking.uri == "http://mlflow.internal:5000"
    assert set(remote.tracking.packages) == {"mlflow"}  # a server: no local SQLite store to open
    wandb = make_plan(
        *TINY,
        "tracking=wandb",
        "tracking.mode=online",
        "tracking.project=tone-runs",
        "tracking.entity=my-team",
        f"tracking.dir={tmp_path}/wb",
    )
    t = wandb.tracking
    assert (t.mode, t.project, t.entity, t.dir) == ("online", "tone-runs", "my-team", f"{tmp_path}/wb")
    assert wandb.id == remote.id == plan.id


@pytest.mark.parametrize(
    "overrides, path, fragment",
    [
        param(
            ("tracking=tensorboard", "tracking.uri=http://x"),
            "tracking.uri",
            "read by tracking=mlflow only",
            id="uri-on-tensorboard",
        ),
        param(("tracking.project=p",), "tracking.project", "read by tracking=wandb only", id="project-on-none"),
        param(
            ("tracking=mlflow", "tracking.mode=online"),
            "tracking.mode",
            "read by tracking=wandb only",
            id="mode-on-mlflow",
        ),
        param(
            ("tracking=wandb", "tracking.project=team/tone"),
            "tracking.project",
            "is not a W&B name",
            id="wandb-project-with-slash",
        ),
        param(("tracking=wandb", "tracking.mode=sometimes"), "tracking.mode", "'offline' or 'online'", id="bad-mode"),
        param(("tracking=tensorboard", "tracking.dir="), "tracking.dir", "at least 1 character", id="empty-dir"),
    ],
)
def test_a_key_of_another_backend_or_a_bad_value_is_refused_at_its_path(overrides, path, fragment):
    with pytest.raises(ConfigError) as info:
        load([*TINY, *overrides])
    assert info.value.path == path
    assert fragment in info.value.render()


def test_a_key_of_another_backend_names_the_backend_to_pick():
    with pytest.raises(ConfigError) as info:
        load([*TINY, "tracking=tensorboard", "tracking.experiment=x"])
    assert "tracking=mlflow tracking.experiment=..." in info.value.fix
    load([*TINY, "tracking=mlflow", "tracking.experiment=x"])  # the printed fix is accepted


def test_credentials_in_the_uri_are_refused_without_repeating_them():
    with pytest.raises(ConfigError) as info:
        load([*TINY, "tracking=mlflow", "tracking.uri=https://ann:s3cr3t-pw@mlflow.example.com"])
    text = info.value.render()
    assert info.value.path == "tracking.uri" and "MLFLOW_TRACKING_PASSWORD" in text
    assert "s3cr3t-pw" not in text


def test_unknown_backend_lists_the_options(capsys):
    code, _, err = run_json(capsys, *TINY, "tracking=tensorbord")
    assert code == 2 and "unknown tracking 'tensorbord'" in err and "tensorboard" in err


# ----------------------------------------------------------------------------- a backend missing


def test_the_planner_warns_when_a_backends_package_is_missing_where_it_plans():
    from planner.core import plan as make
    from planner.host import Host
    from planner.probe import probe
    from planner.tokens import token_counter

    spec, _ = load([*TINY, "tracking=mlflow"])
    stats = probe(spec.data, Path.cwd(), token_counter(spec))
    bare = make(spec, stats, Host(tracking=frozenset()))
    found = [f for f in bare.findings if f.code == "tracking-package"]
    assert len(found) == 1 and found[0].severity == "warning" and found[0].path == "tracking"
    assert "mlflow-skinny" in found[0].message and "SQLAlchemy" in found[0].message
    assert INSTALL in found[0].fix
    assert bare.feasible  # the stages may run where the package is installed: a warning, not an error
    full = make(spec, stats, Host(tracking=frozenset({"mlflow", "sqlalchemy", "alembic"})))
    assert not [f for f in full.findings if f.code == "tracking-package"]
    assert full.id == bare.id
    unprobed = make(spec, stats)  # plan() called in code: the host is unknown, nothing to say
    assert not [f for f in unprobed.findings if f.code == "tracking-package"]


def test_the_host_probe_sees_the_installed_tracking_packages():
    from planner.host import probe

    host = probe()
    assert host.tracking is not None
    # this environment installs the [tracking] extra (README's test command)
    assert {"tensorboard", "mlflow", "wandb"} <= host.tracking


def test_the_runtime_refuses_a_stage_whose_backend_is_not_installed_before_it_starts(base, tmp_path):
    """A package plan.json names that is not importable here: exit 1 with the install command in status.json and
    on stderr, before any work (the stage writes nothing but its status)."""
    from planner.tracking import resolve
    from runtime.__main__ import main
    from runtime.context import StageFailed
    from runtime.tracking import require
    from schemas.tracking import Tracking

    tensorboard = resolve(Tracking(backend="tensorboard"), name=base.name, goal="tone")
    missing = tensorboard.model_copy(update={"packages": {"tensorboard_not_installed_here": "tensorboard"}})
    plan = base.model_copy(update={"tracking": missing})
    with pytest.raises(StageFailed, match=r"tracking=tensorboard needs tensorboard, which is not installed"):
        require(plan)
    bundle = tmp_path / plan.name
    bundle.mkdir()
    (bundle / "plan.json").write_text(plan.model_dump_json(indent=2))
    assert main([str(bundle / "plan.json"), "--stage", "validate_data"]) == 1
    status = json.loads((bundle / "run/validate_data/status.json").read_text())
    assert status["state"] == "failed" and INSTALL in status["error"]
    assert sorted(p.name for p in (bundle / "run/validate_data").iterdir()) == [".lock", "status.json"]
    assert not (bundle / "run/tracking").exists()


def test_wandb_online_without_a_key_is_refused(base, monkeypatch, tmp_path):
    from planner.tracking import resolve
    from runtime.context import StageFailed
    from runtime.tracking import require
    from schemas.tracking import Tracking

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    online = resolve(Tracking(backend="wandb", mode="online"), name=base.name, goal="tone")
    plan = base.model_copy(update={"tracking": online})
    with pytest.raises(StageFailed, match="needs a W&B API key"):
        require(plan)
    (tmp_path / ".netrc").write_text("machine api.wandb.ai login user password " + "y" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    require(plan)  # `wandb login` wrote the key to ~/.netrc
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    require(plan)
    monkeypatch.delenv("WANDB_API_KEY")
    offline = resolve(Tracking(backend="wandb"), name=base.name, goal="tone")
    require(base.model_copy(update={"tracking": offline}))  # offline needs no key
