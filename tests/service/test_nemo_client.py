"""The official NeMo Microservices Python client (`nemo-microservices` on PyPI), unchanged, against the job service
on a real uvicorn server: every call of a Customizer session parses, and our errors come back as its typed errors.

The client is built with `_strict_response_validation=True`: by default it builds its models without validating
(a status of "weird" or a created_at of "notadate" would pass), so only strict mode proves the responses have
Customizer's shapes (required fields, the JobStatus literals, datetimes). The queue is held (--max-running 0):
the session needs jobs, not training; the tutorial job's run to completion is tests/service/test_server.py's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import TINY_URN, Server, kill_runs, tutorial_body

nemo = pytest.importorskip("nemo_microservices", reason="the client tests need the test extra (nemo-microservices)")


@pytest.fixture
def held(tmp_path: Path, datasets: Path, database: dict[str, str]) -> Iterator[Server]:
    """A server whose queue is held: jobs are accepted and planned, none starts."""
    srv = Server(tmp_path / "home", datasets, "--max-running", "0", env=database)
    srv.start()
    yield srv
    srv.stop()
    kill_runs(tmp_path / "home")


def client_for(server: Server, **kw: object):
    return nemo.NeMoMicroservices(base_url=server.url, max_retries=0, _strict_response_validation=True, **kw)


def test_a_customizer_session_through_the_official_client(held: Server):
    from nemo_microservices.types.customization import CustomizationJob, CustomizationStatusDetails

    client = client_for(held)
    configs = client.customization.configs.list()
    names = {f"{c.namespace}/{c.name}" for c in configs}  # iterates every page until an empty one
    assert TINY_URN in names
    tiny = next(c for c in configs.data if f"{c.namespace}/{c.name}" == TINY_URN)
    assert tiny.training_options and tiny.training_options[0].training_type == "sft"
    assert tiny.max_seq_length > 0
    only = client.customization.configs.list(filter={"target_base_model": "meta/llama-3.1-8b-instruct"})
    assert only.data and all(c.namespace == "meta" and c.name.startswith("llama-3.1-8b-instruct@") for c in only.data)

    body = tutorial_body()
    with pytest.raises(nemo.BadRequestError) as versionless:
        client.customization.jobs.create(**{**body, "config": TINY_URN.split("@")[0]})
    assert versionless.value.status_code == 400
    assert versionless.value.body == {"detail": "Version is not specified in the config URN"}
    with pytest.raises(nemo.UnprocessableEntityError) as infeasible:
        client.customization.jobs.create(**{**body, "config": "meta/llama-3.1-70b-instruct@v1.0.0+A100"})
    assert any(f["severity"] == "error" and f["fix"] for f in infeasible.value.body["detail"])
    for call in (
        client.customization.jobs.retrieve,
        client.customization.jobs.status,
        client.customization.jobs.cancel,
    ):
        with pytest.raises(nemo.NotFoundError):
            call("cust-NoSuchJob1234567890abc")

    job = client.customization.jobs.create(**body, output_model="default/email-assist-tiny")
    assert isinstance(job, CustomizationJob)
    assert job.id.startswith("cust-") and job.status == "created" and job.created_at is not None
    assert job.output_model == "default/email-assist-tiny" and job.config == TINY_URN
    assert job.hyperparameters.finetuning_type == "lora" and job.hyperparameters.lora.adapter_dim == 8
    assert job.status_details is not None and job.status_details.status_logs[0].message == "created"
    assert job.plan_id and job.estimate["gpu_hours"] > 0  # ours: extra fields the client keeps
    second = client.customization.jobs.create(**body)
    assert second.output_model == f"default/tiny-llama-email-assist-lora@{second.id}"

    status = client.customization.jobs.status(job.id)
    assert isinstance(status, CustomizationStatusDetails)
    assert status.status in ("created", "pending") and status.percentage_done == 0.0
    assert [log.message for log in status.status_logs][0] == "created"
    assert client.customization.jobs.retrieve(job.id).id == job.id

    page = client.customization.jobs.list(page_size=1)
    assert page.pagination.total_results == 2 and len(page.data) == 1
    assert sorted(j.id for j in page) == sorted([job.id, second.id])  # auto-pagination across pages of one
    deadline = time.monotonic() + 30  # the watcher holds both in the queue: pending, with the reason
    while client.customization.jobs.status(job.id).status != "pending":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "--max-running" in (client.customization.jobs.status(job.id).status_logs[-1].detail or "")
    waiting = client.customization.jobs.list(filter={"status": "pending"})
    assert job.id in {j.id for j in waiting.data}

    cancelled = client.customization.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert client.customization.jobs.status(job.id).status_logs[-1].message == "cancelled"
    with pytest.raises(nemo.BadRequestError):
        client.customization.jobs.cancel(job.id)  # nothing left to cancel
    assert [j.id for j in client.customization.jobs.list(filter={"status": "cancelled"})] == [job.id]
    client.close()


def test_the_client_sends_the_bearer_token(tmp_path: Path, datasets: Path, database: dict[str, str]):
    srv = Server(tmp_path / "home", datasets, "--max-running", "0", env={"LADDER_API_TOKEN": "s3cret", **database})
    srv.start()
    try:
        with pytest.raises(nemo.AuthenticationError):
            client_for(srv).customization.configs.list()
        authorized = client_for(srv, default_headers={"Authorization": "Bearer s3cret"})
        assert authorized.customization.configs.list().data
        assert authorized.customization.jobs.list().data == []
    finally:
        srv.stop()
