"""runtime.rewards on fixed strings: no torch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from runtime import rewards
from schemas.method import Grpo

ROOT = Path(__file__).resolve().parents[2]


def test_numeric_match_reads_the_number_after_answer_else_the_last_number():
    assert rewards.numeric_match("6 x 4 = 24, so Answer: 24", "24") == 1.0
    assert rewards.numeric_match("Answer: 1,200 dollars", "1200") == 1.0
    assert rewards.numeric_match("first 3 then 15", "15") == 1.0  # no 'Answer:': the last number
    assert rewards.numeric_match("Answer: 15 and later 7", "15") == 1.0  # 'Answer:' wins over the last number
    assert rewards.numeric_match("Answer: 14", "15") == 0.0
    assert rewards.numeric_match("no number at all", "15") == 0.0
    assert rewards.numeric_match("Answer: 15", None) == 0.0
    assert rewards.numeric_match("Answer: 2.50", "2.5") == 1.0


def test_format_valid_json_and_regex():
    assert rewards.answer_format("so the total is\nAnswer: 42") == 1.0
    assert rewards.answer_format("answer: -3") == 1.0
    assert rewards.answer_format("the answer is 42") == 0.0
    assert rewards.answer_format("Answer: unknown") == 0.0
    assert rewards.valid_json('{"a": [1, 2]}') == 1.0
    assert rewards.valid_json("  [1, 2]\n") == 1.0
    assert rewards.valid_json("{'a': 1}") == 0.0
    assert rewards.valid_json("") == 0.0
    starts = rewards.get(r"regex:^\s*Answer:")
    assert starts(" Answer: 3", None) == 1.0 and starts("x Answer: 3", None) == 0.0


def test_unknown_and_malformed_names_are_refused_with_the_known_names():
    with pytest.raises(KeyError, match="numeric_match"):
        rewards.get("nonsense")
    with pytest.raises(KeyError, match="bad regular expression"):
        rewards.get("regex:(")


def test_every_reward_the_schema_and_the_config_accept_is_registered():
    """Grpo.rewards's default and conf/method/grpo.yaml's list resolve in the registry."""
    names = set(Grpo().rewards)
    names |= set(yaml.safe_load((ROOT / "conf/method/grpo.yaml").read_text())["rewards"])
    for name in names:
        assert callable(rewards.get(name)), name
    assert {"numeric_match", "format", "valid_json"} <= set(rewards.REWARDS)


def test_trl_adapter_scores_a_batch_against_the_answer_column_and_names_the_metric():
    func = rewards.trl_reward("numeric_match")
    assert func.__name__ == "numeric_match"
    out = func(prompts=["p"] * 3, completions=["Answer: 5", "Answer: 6", [{"role": "assistant", "content": "5"}]],
               completion_ids=[[1]] * 3, answer=["5", "5", "5"], trainer_state=None)
    assert out == [1.0, 0.0, 1.0]
    assert rewards.trl_reward("format")(completions=["Answer: 1", "1"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="answer column"):  # a dropped column must not score silently 0
        func(prompts=["p"], completions=["Answer: 5"], completion_ids=[[1]])
    assert rewards.trl_reward(r"regex:^\d+$").__name__ == "regex_d"


def test_no_torch_imported():
    import subprocess

    code = "import runtime.rewards, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})


def test_schema_knows_exactly_the_registered_rewards():
    from pydantic import ValidationError

    from schemas.method import REWARD_NAMES, Grpo

    assert set(REWARD_NAMES) == set(rewards.REWARDS)
    assert Grpo(rewards=("numeric_match", "regex:^Answer:")).rewards == ("numeric_match", "regex:^Answer:")
    with pytest.raises(ValidationError, match="did you mean 'numeric_match'"):
        Grpo(rewards=("numeric_matc",))
    with pytest.raises(ValidationError, match="bad regular expression"):
        Grpo(rewards=("regex:(",))
