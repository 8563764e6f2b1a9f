"""What counts as a credential, as data: token formats, credential-like environment variable names, the free-text
keys, and the entropy limits for an unrecognised secret in free text. planner.secrets applies these tables to the
composed configuration before it becomes a Spec, so no credential reaches plan.json, config.yaml, a report or a diff.
"""

from __future__ import annotations

# Resolvers that read the process environment. OmegaConf's `oc.env` (and `env`, its name before OmegaConf 2.1).
ENV_RESOLVERS: tuple[str, ...] = ("oc.env", "env")

# Keys whose value is prose for people (reports, PR comments) and never changes what runs. Here an
# `${oc.env:NAME}` stays symbolic: the plan keeps the text as written and its scripts check NAME is set.
FREE_TEXT: tuple[str, ...] = ("goal.description", "goal.serving.server", "data.description")

# (what, regex): values that are credentials whatever key holds them. Refused anywhere in the configuration.
TOKEN_PATTERNS: tuple[tuple[str, str], ...] = (
    # hf_ and sk- tokens mix digits or capitals into the letters, which words like hf_transfer or sk-learn do not.
    ("a Hugging Face token", r"(?<![A-Za-z0-9])hf_(?=[a-z]*[A-Z0-9])[A-Za-z0-9]{8,}"),
    ("an OpenAI-style API key", r"(?<![A-Za-z0-9])sk-(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]{16,}"),
    ("a GitHub token", r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ("an AWS access key id", r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ("a Slack token", r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}"),
    ("a Google API key", r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{30,}"),
    ("a JSON web token", r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("a private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)

# Environment variable names that hold credentials (regex, whole name, case-insensitive). Such a variable may be
# named in a free-text key (kept symbolic) but never resolved into a value that decides what runs.
CREDENTIAL_ENV_NAMES: tuple[str, ...] = (
    r".*(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH).*",
)

# An unrecognised secret in a free-text key: a word of at least `min_length` characters of [A-Za-z0-9+/=] (so
# '-', '_' and '.' split model names and snake_case apart) that is either hex of `hex_min_length`+ characters
# with digits and letters (an API key; a commit hash too, which a description can shorten), or mixes capitals,
# small letters and at least `min_digit_runs` separate runs of digits with a Shannon entropy of `min_bits`+
# per character (random base62 of 24+ characters scores about 4.5; CamelCase prose has one digit run at most).
HIGH_ENTROPY = {"min_length": 24, "min_bits": 4.0, "min_digit_runs": 3, "hex_min_length": 32, "hex_min_bits": 3.0}
