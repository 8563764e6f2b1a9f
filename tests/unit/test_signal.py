"""A training stage stops before its time limit: the lead the planner writes into the plan (stage.stop), and the
directives and options the launchers render from it (#SBATCH --signal, --requeue, torchrun --shutdown-timeout)."""

from __future__ import annotations

import re

import pytest

from planner import estimator as est
from planner.launchers.slurm import sbatch_directives_ok
from planner.render import render
from tests.unit.helpers import make_plan

SFT_8B = ("+goal=domain_shift", "model=llama-3.1-8b-instruct", "inventory=h100-2node", "method=sft", "launcher=slurm")
LORA_8B = ("+goal=tone", "model=llama-3.1-8b-instruct", "inventory=dgx-h100", "method=lora", "launcher=slurm")
REPORT = "# report\n"


def _signal(text: str) -> str | None:
    found = re.findall(r"^#SBATCH --signal=(\S+)$", text, flags=re.MULTILINE)
    assert len(found) <= 1, found
    return found[0] if found else None


def test_full_sft_lead_covers_writing_all_weights_and_optimizer_state():
    plan = make_plan(*SFT_8B)
    stop = plan.stage("train").stop
    assert stop is not None
    params = plan.spec.model.architecture.total_params
    assert stop.checkpoint_bytes == 16 * params  # bf16 weights + fp32 master + two Adam moments
    assert 120e9 < stop.checkpoint_bytes < 135e9  # the "about 128 GB"
    bandwidth = plan.spec.knowledge.estimator.checkpoint_gb_per_minute * est.GB / 60
    assert stop.checkpoint_seconds == pytest.approx(stop.checkpoint_bytes / bandwidth, abs=0.1)
    margin = plan.spec.knowledge.estimator.stop_margin_seconds
    needed = stop.checkpoint_seconds + stop.step_seconds + margin  # each rounded to 0.1 s in the plan
    assert needed - 0.1 <= stop.lead_seconds < needed + 1.1
    assert stop.lead_seconds > 30 + 30  # more than Slurm's KillWait and torchrun's default grace together


def test_lora_lead_is_the_adapter_write_not_the_model():
    lora, sft = make_plan(*LORA_8B).stage("train").stop, make_plan(*SFT_8B).stage("train").stop
    assert lora is not None and sft is not None
    assert lora.checkpoint_bytes < sft.checkpoint_bytes / 100
    assert lora.lead_seconds < sft.lead_seconds


def test_the_lead_follows_the_storage_bandwidth_in_the_knowledge_table():
    base = make_plan(*SFT_8B).stage("train").stop
    slow = make_plan(*SFT_8B, "knowledge.estimator.checkpoint_gb_per_minute=30").stage("train").stop
    assert base is not None and slow is not None
    assert slow.checkpoint_seconds == pytest.approx(2 * base.checkpoint_seconds, abs=0.2)
    assert slow.lead_seconds - base.lead_seconds == pytest.approx(base.checkpoint_seconds, abs=2)


def test_only_training_stages_stop_and_their_time_limit_makes_room_for_the_lead():
    plan = make_plan(*SFT_8B)
    for stage in plan.stages:
        assert (stage.stop is not None) == (stage.method is not None), stage.name
    train = plan.stage("train")
    assert train.estimate is not None and train.estimate.wall_hours_range is not None and train.stop is not None
    hours = train.resources["hours"]
    assert isinstance(hours, float)
    assert hours * 3600 >= train.estimate.wall_hours_range[1] * 1.5 * 3600 + train.stop.lead_seconds


def test_sbatch_signals_training_stages_ahead_of_the_limit_and_requeues():
    plan = make_plan(*SFT_8B)
    files = render(plan, REPORT)
    train = files["launch/train.sbatch"]
    stop = plan.stage("train").stop
    assert stop is not None
    assert _signal(train) == f"USR1@{stop.lead_seconds}"
    assert "\n#SBATCH --requeue\n" in train
    assert f"--signals-to-handle SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout {stop.lead_seconds}" in train
    assert 'scontrol requeue "$SLURM_JOB_ID"' in train
    assert sbatch_directives_ok(train) == []
    for name, text in files.items():
        if name.endswith(".sbatch") and name != "launch/train.sbatch":
            assert _signal(text) is None, name
            assert "--shutdown-timeout" not in text and "scontrol requeue" not in text, name


def test_a_training_stage_requeues_at_the_limit_even_when_failures_may_not():
    plan = make_plan(*SFT_8B, "launcher.requeue=0")
    files = render(plan, REPORT)
    assert "\n#SBATCH --requeue\n" in files["launch/train.sbatch"]
    assert "((${SLURM_RESTART_COUNT:-0} - ${planned:-0} > 0))" in files["launch/train.sbatch"]
    assert "\n#SBATCH --no-requeue\n" in files["launch/eval.sbatch"]


def test_the_signal_never_comes_before_half_the_time_limit():
    plan = make_plan(*SFT_8B, "inventory.time_limit_hours=0.05")  # a 3-minute cap, below the 189 s lead
    train = render(plan, REPORT)["launch/train.sbatch"]
    assert "#SBATCH --time=00:03:00" in train
    assert _signal(train) == "USR1@90"
    assert "--shutdown-timeout 90" in train


@pytest.mark.parametrize(
    ("overrides", "script"),
    [
        (("+goal=tone", "inventory=h200-1", "launcher=torchrun"), "launch/run_torchrun.sh"),
        (("+goal=tone", "model=tiny-llama", "inventory=local", "layout.gpus_per_node=2"), "launch/run_local.sh"),
    ],
    ids=["torchrun", "local-2-processes"],
)
def test_torchrun_waits_the_lead_for_its_workers(overrides, script):
    plan = make_plan(*overrides)
    text = render(plan, REPORT)[script]
    stop = plan.stage("train").stop
    assert stop is not None
    train = next(line for line in text.splitlines() if line.startswith("run_stage train "))
    assert f"--shutdown-timeout {stop.lead_seconds}" in train
    assert "--shutdown-timeout" not in next(line for line in text.splitlines() if line.startswith("run_stage eval "))


@pytest.mark.parametrize("script", ["launch/run_local.sh", "launch/submit.sh"])
def test_launch_scripts_record_what_they_start_in_jobs_json(script):
    overrides = ("+goal=tone", "model=tiny-llama", "inventory=local")
    text = render(make_plan(*overrides, *(("launcher=slurm",) if "submit" in script else ())), REPORT)[script]
    assert "mktemp launch/.jobs.json." in text and "launch/jobs.json" in text
    assert re.search(r'mv -f "\$tmp" launch/jobs\.json', text)  # atomic: a whole file or the old one
