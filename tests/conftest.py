"""Shared pytest setup.

* Hugging Face Hub access is switched off for every test (``HF_HUB_OFFLINE=1``).
* ``slurm_cluster``: session fixture that skips unless ``sinfo`` shows a usable node.
* In CI (``CI=true``) a test marked ``integration`` may not be skipped: the skip is turned
  into a failure that carries the skip reason, so a missing cluster cannot pass silently.

Nothing here imports torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

NO_SLURM = "no Slurm cluster: run sudo .ci/slurm-up.sh"
_USABLE_STATES = {"idle", "mix", "mixed", "alloc", "allocated"}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if (
        _in_ci()
        and report.skipped
        and not hasattr(report, "wasxfail")  # xfail/xpass are reported as skips: leave them
        and item.get_closest_marker("integration") is not None
    ):
        report.outcome = "failed"
        report.longrepr = (
            f"integration test skipped in CI (CI={os.environ.get('CI')}), "
            f"which counts as a failure: {_skip_reason(report)}"
        )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module under tests/integration skipped at import time (module-level
    ``pytest.skip``/``importorskip``) has no markers yet: in CI, fail it as well."""
    report = yield
    if (
        _in_ci()
        and report.skipped
        and isinstance(collector, pytest.Module)
        and "integration" in Path(str(collector.path)).parts
    ):
        report.outcome = "failed"
        report.longrepr = (
            "integration module skipped in CI, which counts as a failure: "
            f"{_skip_reason(report)}"
        )
    return report


def _node_states() -> list[str]:
    if shutil.which("sinfo") is None:
        return []
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%t"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if proc.returncode != 0:
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def slurm_cluster() -> list[str]:
    """The node states ``sinfo`` reports; skips unless one node is idle/mixed/allocated."""
    states = _node_states()
    if not _USABLE_STATES.intersection(states):
        pytest.skip(NO_SLURM)
    return states
