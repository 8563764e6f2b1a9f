"""tiny-llama, built once per test session (cached on disk: a build takes about 90 s, once)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from runtime import tiny

    return tiny.build(progress=False)
