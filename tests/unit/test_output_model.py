"""goal.output_model names what the plan publishes (the job service sets it to the job's output model); unset, the
name is derived from the plan and the plan id is what it was before the key existed."""

from __future__ import annotations

import pytest

from planner.compose import load
from planner.errors import ConfigError
from tests.unit.helpers import make_plan

BASE = ("+goal=tone", "model=tiny-llama", "inventory=local", "method=lora")


def test_unset_the_name_is_derived_and_not_in_the_spec():
    plan = make_plan(*BASE)
    assert plan.artifacts.output_model == f"default/tiny-llama-tone-lora@{plan.id}"
    assert "output_model" not in plan.spec.goal.model_dump(mode="json")


@pytest.mark.parametrize("name", ["team/support-tone@cust-1a2b", "default/email-assist-tiny"])
def test_a_given_name_is_published_under_that_name(name):
    plan = make_plan(*BASE, f"goal.output_model={name}")
    assert plan.artifacts.output_model == name
    assert plan.artifacts.published_dir == "run/publish/" + name.replace("/", "__").replace("@", "--")
    assert plan.id != make_plan(*BASE).id


@pytest.mark.parametrize("name", ["../etc@x", "team/a/b@v1", "team/x@", "noslash@v1", "team/.hidden@v1"])
def test_a_name_that_is_not_namespace_name_version_is_refused_at_its_key(name):
    with pytest.raises(ConfigError) as err:
        load([*BASE, f"goal.output_model={name}"])
    assert err.value.path == "goal.output_model"
    assert "is not namespace/name@version" in err.value.render()
