"""Credentials never land in artifacts: the composed configuration becomes a plain dict here, and only here.

`resolved(cfg)` replaces `OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)` at the seam between
Hydra and the Spec (planner.compose, planner.__main__), with three rules whose tables are schemas.secrets:

- An environment-reading interpolation (`${oc.env:NAME}`) in a free-text key (goal.description, ...) is not
  resolved: the plan keeps the text as written, so plan.json, config.yaml, the reports and a plan diff show
  `${oc.env:NAME}` and never the value. `required_env(plan)` names those variables; the compiled scripts check
  that they are set before any stage runs, without printing them.
- Everywhere else the planner resolves it, because the plan is the contract (`data.path=${oc.env:SCRATCH}/tone`
  plans and runs the same folder), except for a credential-like name (HF_TOKEN, *_API_KEY, ...): its value would
  be written into the plan, so that is refused (exit 2) with the key path.
- A resolved value that looks like a credential (hf_..., sk-..., ghp_..., AKIA..., a long high-entropy word in a
  free-text key) is refused with its key path, wherever it came from. Messages name the key, never the value.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from planner.errors import ConfigError
from schemas.secrets import CREDENTIAL_ENV_NAMES, ENV_RESOLVERS, FREE_TEXT, HIGH_ENTROPY, TOKEN_PATTERNS

_ENV_REF = re.compile(
    r"(?<!\\)\$\{\s*(?:" + "|".join(re.escape(r) for r in ENV_RESOLVERS) + r")\s*:\s*['\"]?([A-Za-z_]\w*)?"
)
_TOKEN = re.compile("|".join(f"(?P<t{i}>{rx})" for i, (_, rx) in enumerate(TOKEN_PATTERNS)))
_CREDENTIAL_NAME = re.compile("|".join(f"(?:{rx})" for rx in CREDENTIAL_ENV_NAMES), re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9+/=]{" + str(int(HIGH_ENTROPY["min_length"])) + ",}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_RANDOM = "a secret (a long random string)"


def resolved(cfg: Any) -> dict[str, Any]:
    """The composed DictConfig as a plain, resolved dict, with the rules above applied. Raises ConfigError."""
    from omegaconf import OmegaConf, read_write

    refs = list(_env_refs(OmegaConf.to_container(cfg, resolve=False), ""))
    if refs:
        with read_write(cfg):
            for path, text, names in refs:
                if path in FREE_TEXT:  # kept as written: `\${` is OmegaConf's escape for a literal `${`
                    OmegaConf.update(cfg, path, re.sub(r"(?<!\\)\$\{", r"\\${", text), merge=False)
                    continue
                for name in names:
                    if _CREDENTIAL_NAME.fullmatch(name):
                        raise ConfigError(
                            f"{path} reads the credential {name} from the environment (${{oc.env:{name}}}): "
                            "resolved, its value would be written into plan.json, config.yaml and the reports",
                            path=path,
                            fix=f"remove it from {path}: credentials reach the jobs only through the environment "
                            "at run time (launcher.env_passthrough names them); ${oc.env:...} stays symbolic "
                            f"only in the free-text keys ({', '.join(FREE_TEXT)})",
                        )
    raw: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[assignment]
    check_values(raw)
    return raw


def check_values(raw: Any, prefix: str = "") -> None:
    """Refuse a value that looks like a credential, naming its key path (never the value)."""
    for path, value in _strings(raw, prefix):
        what = token_kind(value, free_text=path in FREE_TEXT)
        if what is None:
            continue
        if path in FREE_TEXT:
            fix = (
                f"reference it as ${{oc.env:NAME}} ({path}=${{oc.env:NAME}}: the plan keeps the reference, "
                "the job reads NAME from the environment at run time) or remove it"
                + ("; if it is not a secret (a commit hash), shorten it" if what == _RANDOM else "")
            )
        else:
            fix = (
                "remove it: credentials reach the jobs only through the environment at run time "
                "(launcher.env_passthrough names them), never through the plan"
            )
        raise ConfigError(
            f"{path} holds what looks like {what}: a credential never goes into the plan, its reports or a diff",
            path=path,
            fix=fix,
        )


def token_kind(value: str, free_text: bool = False) -> str | None:
    """What credential `value` looks like (schemas.secrets.TOKEN_PATTERNS; in free text also a long
    high-entropy word), or None."""
    match = _TOKEN.search(value)
    if match is not None:
        return TOKEN_PATTERNS[int(str(match.lastgroup)[1:])][0]
    if free_text:
        for word in _WORD.findall(value):
            if _high_entropy(word):
                return _RANDOM
    return None


def required_env(spec: Any) -> tuple[str, ...]:
    """The environment variables the plan refers to symbolically (its free-text keys), sorted: the jobs need
    them set. `spec`: a Spec, or its JSON dump."""
    data = spec if isinstance(spec, dict) else spec.model_dump(mode="json")
    names: set[str] = set()
    for path in FREE_TEXT:
        value: Any = data
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str):
            names.update(m.group(1) for m in _ENV_REF.finditer(value) if m.group(1))
    return tuple(sorted(names))


def _high_entropy(word: str) -> bool:
    if _HEX.fullmatch(word):
        return (
            len(word) >= HIGH_ENTROPY["hex_min_length"]
            and any(c.isdigit() for c in word)
            and any(c.isalpha() for c in word)
            and _bits(word) >= HIGH_ENTROPY["hex_min_bits"]
        )
    if not (any(c.islower() for c in word) and any(c.isupper() for c in word)):
        return False
    digit_runs = len(re.findall(r"[0-9]+", word))
    return digit_runs >= HIGH_ENTROPY["min_digit_runs"] and _bits(word) >= HIGH_ENTROPY["min_bits"]


def _bits(word: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(word)
    return -sum(c / n * math.log2(c / n) for c in Counter(word).values())


def _env_refs(node: Any, prefix: str) -> Iterator[tuple[str, str, list[str]]]:
    """(key path, text, variable names) of every string that reads the environment."""
    for path, value in _strings(node, prefix):
        if "$" in value:
            found = list(_ENV_REF.finditer(value))
            if found:
                yield path, value, [m.group(1) for m in found if m.group(1)]


def _strings(node: Any, prefix: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield prefix, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{prefix}[{i}]")


__all__ = ["check_values", "required_env", "resolved", "token_kind"]
