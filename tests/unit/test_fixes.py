"""Every refusal gives a specific fix, and the fix works: applied as printed, it does not lead straight to another
error at the same key. Cases of our own, across schema errors (exit 2) and error findings (exit 1)."""

from __future__ import annotations

import json
import re

import pytest

from tests.unit.helpers import run_cli

GENERIC = "the keys and types are in docs/config-reference.md"

CASES = [
    # schema: ranges, types, finite numbers, booleans, choices
    "inventory.nodes=0",
    "inventory.nodes=true",
    "inventory.gpus_per_node=100000",
    "inventory.price_per_gpu_hour=-1",
    "method.learning_rate=inf",
    "method.learning_rate=nan",
    "method.learning_rate=1e300",
    "method=lora method.lora.adapter_dim=-3",
    "method=lora method.lora.adapter_dim=true",
    "method=lora method.epochs=2.5",
    "method=sft method.batch_size=0",
    "method=grpo method.temperature=0",
    "method=dpo method.beta=1000",
    "method=lora method.max_seq_length=100000000",
    "goal.gap=stile",
    "goal.target_score=1.5",
    "goal.deadline_hours=-2",
    "launcher.kind=slurmm",
    "eval.max_new_tokens=0",
    "layout.tensor_parallel=0",
    "layout.pipeline_parallel=100000",
    # findings: values that are valid alone but not with this model, data or run
    "method=lora method.lora.adapter_dim=8192",
    "method=lora method.lora.adapter_dim=12",
    "method=lora method.lora.adapter_dim=32",
    "method=lora method.warmup_steps=100000",
    "layout.pipeline_parallel=64",
    "layout.tensor_parallel=3",
    "method=lora layout.micro_batch=3",
    "model=llama-3.1-70b-instruct inventory=h100-2node method=sft",
    "method=grpo",
]


def _run(capsys, args: list[str]) -> tuple[int, dict | None, str]:
    code, out, err = run_cli(capsys, "+goal=tone", *args, "dry_run=true", "report=json")
    return code, (json.loads(out) if code in (0, 1) else None), err


def _errors(code: int, plan: dict | None, err: str) -> dict[str, str]:
    """Key path -> fix, for every error of a run."""
    if code == 2:
        at = re.search(r"^  at: (\S+)", err, re.M)
        fix = re.search(r"^  fix: (.*)", err, re.M)
        return {at.group(1) if at else "": fix.group(1) if fix else ""}
    return {f["path"]: f["fix"] for f in (plan or {}).get("findings", []) if f["severity"] == "error"}


def _value(text: str) -> str | None:
    """The concrete value a fix names: the first of a list, the low end of a range, a bound, a number."""
    text = text.strip()
    if m := re.match(r"one of: ([\w.-]+)", text):
        return m.group(1)
    if m := re.match(r"a (?:whole )?number from ([\d.e+-]+)", text):
        return m.group(1)
    if m := re.match(r"a (?:whole )?number >= ([\d.e+-]+)", text):
        return m.group(1)
    if m := re.match(r"a (whole )?number > ([\d.e+-]+) and <= ([\d.e+-]+)", text):
        # a typical value of a range that spans orders of magnitude: its geometric middle
        low, high = float(m.group(2)), float(m.group(3))
        if m.group(1):
            return str(round(((low + 1) * high) ** 0.5))
        return f"{(low * high) ** 0.5 if low > 0 else high / 1000:g}"
    if m := re.match(r"a multiple of (\d+)", text):
        return m.group(1)
    if m := re.match(r"(?:at most )?([\d.e+-]+)(?: or less)?\b", text):
        return m.group(1)
    if text.startswith("true or false"):
        return "true"
    return None


def _applied(path: str, fix: str) -> list[str]:
    """The overrides a fix names: `key=value` written in it, else `set <key> to <value>`, else `use <value>` for
    the key the error is at."""
    written = re.findall(r"\b((?:method|layout|inventory|goal|eval|launcher|model|data)(?:\.\w+)*=[\w.+-]+)", fix)
    if written:
        return written
    if m := re.match(r"leave ([\w.]+) null", fix):
        return [f"{m.group(1)}=null"]
    if m := re.match(r"set ([\w.]+) to (.*)", fix):
        value = _value(m.group(2))
        return [f"{m.group(1)}={value}"] if value is not None else []
    if (m := re.match(r"use (.*)", fix)) and "." in path:
        value = _value(m.group(1))
        return [f"{path}={value}"] if value is not None else []
    return []


@pytest.mark.parametrize("case", CASES)
def test_the_printed_fix_is_specific_and_works(capsys, case):
    args = case.split()
    code, plan, err = _run(capsys, args)
    assert code in (1, 2), f"{case}: expected a refusal, got exit {code}"
    errors = _errors(code, plan, err)
    assert errors, err
    applicable = 0
    for path, fix in errors.items():
        assert fix and GENERIC not in fix, f"{case}: only the generic hint at {path}: {fix!r}"
        overrides = _applied(path, fix)
        if not overrides:
            continue
        applicable += 1
        code2, plan2, err2 = _run(capsys, [*args, *overrides])
        after = _errors(code2, plan2, err2)
        assert path not in after, f"{case}: the fix {overrides} for {path} leads to another error there: {after[path]}"
    assert applicable, f"{case}: no printed fix could be applied: {errors}"
