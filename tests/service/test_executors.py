"""The Slurm executor's reading of a run from Slurm's job states (planner.status.slurm_states, stubbed here with the
states a cluster reports; tests/integration/test_slurm_service.py runs the real cluster): a run is queued only while
nothing of it has started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner import status
from planner.service.executors import SlurmExecutor

JOBS = {"validate_data": "11", "train": "12", "eval": "13"}


def poll(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, states: dict[str, str], started: tuple[str, ...] = ()):
    monkeypatch.setattr(status, "slurm_states", lambda ids: {j: (states[j], "Resources") for j in ids if j in states})
    for stage in started:
        (tmp_path / "run" / stage).mkdir(parents=True)
        (tmp_path / "run" / stage / "status.json").write_text(json.dumps({"state": "completed"}))
    return SlurmExecutor().poll({"jobs": JOBS}, tmp_path, tmp_path / "job")


def test_a_run_whose_jobs_all_wait_is_queued(monkeypatch, tmp_path):
    run = poll(monkeypatch, tmp_path, {"11": "PENDING", "12": "PENDING", "13": "PENDING"})
    assert run.alive and run.queued
    assert run.detail == "Slurm job 11 (stage validate_data) is PENDING (Resources)"


def test_a_job_slurm_does_not_list_yet_keeps_the_run_queued(monkeypatch, tmp_path):
    run = poll(monkeypatch, tmp_path, {"11": "PENDING"})  # 12 and 13 not listed yet: UNKNOWN
    assert run.alive and run.queued


def test_once_a_job_ran_the_run_is_not_queued(monkeypatch, tmp_path):
    run = poll(monkeypatch, tmp_path, {"11": "COMPLETED", "12": "PENDING", "13": "PENDING"})
    assert run.alive and not run.queued
    assert run.detail.startswith("Slurm job 12 (stage train) is PENDING")


def test_a_requeued_run_that_started_before_is_not_queued_again(monkeypatch, tmp_path):
    run = poll(monkeypatch, tmp_path, {"11": "PENDING", "12": "PENDING", "13": "PENDING"}, started=("validate_data",))
    assert run.alive and not run.queued


def test_a_run_whose_jobs_all_completed_ended_well(monkeypatch, tmp_path):
    run = poll(monkeypatch, tmp_path, {"11": "COMPLETED", "12": "COMPLETED", "13": "COMPLETED"})
    assert (run.alive, run.exit_code, run.queued) == (False, 0, False)
