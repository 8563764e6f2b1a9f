"""The job service on a real uvicorn server, over HTTP: the configs, the refusals (the exact versionless-URN 400,
infeasible plans as findings), Customizer's tutorial job from created to completed on CPU across a server restart
(the adapter loads with PEFT), twenty concurrent POSTs, pagination, cancel, and bearer tokens."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.service.conftest import TINY_URN, Server, kill_runs, tutorial_body

API = "/v1/customization"


def wait_for(client, job_id: str, want: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        status = client.get(f"{API}/jobs/{job_id}/status").json()
        if status["status"] in want:
            return status
        if status["status"] in {"failed", "cancelled"} - want:
            break
        time.sleep(1)
    raise AssertionError(f"job {job_id} is {status.get('status')}, not {want}: {status}")


def ended(status: dict) -> bool:
    """Every stage of the job's bundle has finished, or the run stopped at one."""
    states = [stage["state"] for stage in status["stages"]]
    return "failed" in states or all(state == "completed" for state in states)


def test_configs_and_the_refusals(server):
    with server.client() as c:
        configs = c.get(f"{API}/configs").json()
        tiny = next(item for item in configs["data"] if item["urn"] == TINY_URN)
        assert tiny["name"] == "tiny-llama@v1.0.0+CPU" and tiny["namespace"] == "local"
        assert {"training_type": "sft", "finetuning_type": "lora"}.items() <= tiny["training_options"][0].items()
        only = c.get(f"{API}/configs", params={"filter[target_base_model]": "meta/llama-3.1-8b-instruct"}).json()
        assert {item["urn"] for item in only["data"]} == {
            "meta/llama-3.1-8b-instruct@v1.0.0+A100",
            "meta/llama-3.1-8b-instruct@v1.0.0+L40",
        }
        assert [i["urn"] for i in c.get(f"{API}/configs", params={"model": "tiny-llama"}).json()["data"]] == [TINY_URN]

        for urn in ("tiny-llama", "local/tiny-llama"):
            r = c.post(f"{API}/jobs", json=tutorial_body(config=urn))
            assert (r.status_code, r.json()) == (400, {"detail": "Version is not specified in the config URN"})
        r = c.post(f"{API}/jobs", json=tutorial_body(dataset="flat"))
        assert r.status_code == 422 and r.json()["detail"][0]["msg"].startswith("Dataset is empty")
        r = c.post(f"{API}/jobs", json=tutorial_body(config="meta/llama-3.1-70b-instruct@v1.0.0+A100"))
        assert r.status_code == 422
        assert all(f["path"] and f["fix"] for f in r.json()["detail"] if f["severity"] == "error")
        dry = c.post("/v1/plans", json=tutorial_body(config="meta/llama-3.1-70b-instruct@v1.0.0+A100"))
        assert dry.status_code == 200 and dry.json()["feasible"] is False and dry.json()["plan"]["findings"]
        assert c.get(f"{API}/jobs/cust-nope").status_code == 404
        assert c.get(f"{API}/jobs").json()["pagination"]["total_results"] == 0  # nothing refused was kept


@pytest.mark.runtime
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_the_tutorial_job_runs_to_completion_across_a_restart(server):
    with server.client() as c:
        r = c.post(f"{API}/jobs", json=tutorial_body(config="tiny-llama@v1.0.0+CPU"))
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["id"].startswith("cust-") and job["status"] == "created" and len(job["plan_id"]) == 10
        assert job["output_model"] == f"default/tiny-llama-email-assist-lora@{job['id']}"
        assert job["estimate"]["gpu_hours"] > 0 and job["hyperparameters"]["finetuning_type"] == "lora"
        assert job["planner_command"].startswith("python -m planner model=tiny-llama inventory=local method=lora")
        wait_for(c, job["id"], {"running"}, timeout=60)
    server.restart()  # mid-job: the run goes on in its own session, and the new server finds it again
    with server.client() as c:
        done = wait_for(c, job["id"], {"completed"}, timeout=600)
        assert done["epochs_completed"] == 2 and done["percentage_done"] == 100.0
        assert [p["epoch"] for p in done["metrics"]["metrics"]["val_loss"]] == [1, 2]
        assert len(done["metrics"]["metrics"]["train_loss"]) == 2 and done["val_loss"] is not None
        stamps = [p["timestamp"] for p in done["metrics"]["metrics"]["val_loss"]]
        assert all(dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ") for s in stamps) and stamps == sorted(stamps)
        logs = [(entry["message"], entry["detail"] or "") for entry in done["status_logs"]]
        assert [m for m, _ in logs][:2] == ["created", "running"] and logs[-1][0] == "completed"
        assert any("server restarted" in d for _, d in logs), logs
        deadline = time.monotonic() + 300
        while not ended(status := c.get(f"{API}/jobs/{job['id']}/status").json()):  # eval, gate, publish go on
            assert time.monotonic() < deadline, status
            time.sleep(1)
        gate = c.get(f"{API}/jobs/{job['id']}/gate").json()
        assert status["gate"] == gate
        # the job's plan publishes under the job's own output model name
        plan = json.loads((Path(job["bundle"]) / "plan.json").read_text())
        assert plan["artifacts"]["output_model"] == job["output_model"]
        folder = job["output_model"].replace("/", "__").replace("@", "--")
        assert plan["artifacts"]["published_dir"] == f"run/publish/{folder}"
        assert gate["verdict"] in ("pass", "fail"), gate
        if gate["verdict"] == "pass":
            assert gate["published"] and gate["published_model"] == job["output_model"]
        else:  # a failed gate keeps the model out of the published names, and says why
            assert not gate["published"] and gate["published_model"] is None
            assert any("not published" in reason for reason in gate["reasons"])
        listed = c.get(f"{API}/jobs", params={"filter[status]": "completed"}).json()
        assert [j["id"] for j in listed["data"]] == [job["id"]]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from runtime import tiny

    adapter = Path(job["bundle"]) / "run" / "train" / "adapter"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny.build(progress=False)), adapter)
    assert model.peft_config["default"].r == 8


def test_cancelling_a_running_job_stops_its_run(server):
    with server.client() as c:
        job = c.post(f"{API}/jobs", json=tutorial_body()).json()
        wait_for(c, job["id"], {"running"}, timeout=60)
        reply = c.post(f"{API}/jobs/{job['id']}/cancel")
        assert reply.status_code == 200 and reply.json()["status"] in ("cancelling", "cancelled")
        done = wait_for(c, job["id"], {"cancelled"}, timeout=120)
        assert [log["message"] for log in done["status_logs"]][-2:] == ["cancelling", "cancelled"]
        assert "SIGTERM" in done["status_logs"][-2]["detail"]
        assert done["gate"]["verdict"] == "not_run" and not done["gate"]["published"]
        assert c.post(f"{API}/jobs/{job['id']}/cancel").status_code == 400
    pid = int((server.home / "jobs" / job["id"] / "pid").read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def test_twenty_concurrent_posts_lose_no_job_and_tokens_guard_every_route(tmp_path, datasets, database):
    tokens = {"LADDER_API_TOKEN": "s3cret", "LADDER_API_TOKENS": "team-token=team-a"}
    srv = Server(tmp_path / "home", datasets, "--max-running", "0", env={**tokens, **database})
    srv.start()
    try:
        with srv.client() as anonymous, srv.client("wrong") as wrong:
            for client in (anonymous, wrong):
                assert client.get(f"{API}/configs").status_code == 401
                assert client.get(f"{API}/jobs").status_code == 401
                assert client.post("/v1/plans", json=tutorial_body()).status_code == 401
        with srv.client("s3cret") as c:
            assert c.post("/v1/plans", json=tutorial_body()).json()["feasible"] is True
            with ThreadPoolExecutor(20) as pool:
                replies = list(pool.map(lambda _: c.post(f"{API}/jobs", json=tutorial_body()), range(20)))
            assert [r.status_code for r in replies] == [200] * 20, [r.text for r in replies if r.status_code != 200]
            ids = {r.json()["id"] for r in replies}
            assert len(ids) == 20
            seen = []
            for page in (1, 2, 3, 4):
                listed = c.get(f"{API}/jobs", params={"page": page, "page_size": 7}).json()
                seen += [j["id"] for j in listed["data"]]
                assert listed["pagination"]["total_results"] == 20 and listed["pagination"]["total_pages"] == 3
            assert sorted(seen) == sorted(ids)  # page 4 is empty: the client's auto-pagination stops there
            first = sorted(ids)[0]
            assert c.get(f"{API}/jobs/{first}/status").json()["status"] in ("created", "pending")
            cancelled = c.post(f"{API}/jobs/{first}/cancel")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            assert c.post(f"{API}/jobs/{first}/cancel").status_code == 400
        with srv.client("team-token") as team:
            mine = team.post(f"{API}/jobs", json=tutorial_body()).json()
            assert mine["namespace"] == "team-a"
            assert team.get(f"{API}/jobs").json()["pagination"]["total_results"] == 1
            assert team.get(f"{API}/jobs/{first}").status_code == 404  # another namespace's job
    finally:
        srv.stop()
        kill_runs(tmp_path / "home")
    assert not list((tmp_path / "home" / "jobs").glob("*/pid")), "--max-running 0 started a job"


def test_another_interface_without_a_token_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "planner.serve", "--host", "0.0.0.0", "--datasets-root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "LADDER_HOME": str(tmp_path)},
    )
    assert proc.returncode == 2 and "LADDER_API_TOKEN" in proc.stderr


def test_a_job_whose_bundle_is_gone_fails_and_says_why(tmp_path, datasets, database):
    import shutil

    srv = Server(tmp_path / "home", datasets, "--max-running", "0", env=database)
    srv.start()
    try:
        with srv.client() as c:
            job = c.post(f"{API}/jobs", json=tutorial_body()).json()
        shutil.rmtree(Path(job["bundle"]))
        srv.args = ()  # the queue opens: the job's start finds no bundle
        srv.restart()
        with srv.client() as c:
            status = wait_for(c, job["id"], {"failed"}, timeout=30)
            assert "was removed or damaged" in status["status_logs"][-1]["detail"]
            assert status["gate"]["verdict"] == "not_run" and status["stages"] == []
            assert c.get(f"{API}/jobs/{job['id']}").json()["status"] == "failed"
            assert c.get(f"{API}/jobs").status_code == 200
    finally:
        srv.stop()
        kill_runs(tmp_path / "home")
