"""The training recipe registry: one recipe per method kind the schema trains, each with the two entry points
the train stage and the conformance test call, importable without torch (so a planner-side test can read it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.recipes import RECIPES
from schemas.method import TRAIN_KINDS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.runtime


def test_recipe_keys_are_the_schemas_train_kinds():
    assert sorted(RECIPES) == sorted(TRAIN_KINDS)


def test_every_recipe_runs_and_builds_its_trl_config():
    for kind, recipe in RECIPES.items():
        assert callable(getattr(recipe, "run", None)), kind
        assert callable(getattr(recipe, "trl_config", None)), kind


def test_the_registry_imports_no_torch():
    code = ("import sys, runtime.recipes, runtime.train; "
            "bad = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
