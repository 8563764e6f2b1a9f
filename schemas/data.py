"""Data declarations (what the team has) and the statistics probed from the files."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.base import Frozen, SafeName

DataFormat = Literal[
    "prompt_completion",
    "messages",
    "preference",
    "unpaired_preference",
    "prompt_answer",
    "documents",
    "alpaca",
    "sharegpt",
]

LONGEST_KEPT = 256
REMOTE_SCHEMES = ("hf://", "s3://", "gs://", "nds://", "https://")


class Declared(Frozen):
    """Counts declared for data that is not on this machine (remote datasets): used as declared, not measured."""

    training: int = Field(ge=0)
    validation: int | None = Field(None, ge=0)
    p95_tokens: int | None = Field(None, gt=0, description="95th percentile of record length in tokens, if known.")


class HubSplits(Frozen):
    """Which splits of a Hugging Face Hub dataset train and validate."""

    training: str = Field("train", min_length=1, description="The split that trains.")
    validation: str | None = Field(
        None,
        min_length=1,
        description="The split that validates. Null: `validation` where the dataset has one, else the hold-out "
        "(knowledge.lints.holdout_fraction of training, seeded).",
    )


_HUB_REPO = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")
_HUB_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
StoppingStrategy = Literal["first_exhausted", "all_exhausted"]


class Source(Frozen):
    """Where one dataset is and how to read it: what `data` and each part of `data.mixture` share."""

    path: str | None = Field(
        None,
        description="builtin:<name> for a shipped sample, a local directory (relative to the working directory), "
        "hf://<org>/<name>[@<revision>] for a Hugging Face Hub dataset (its counts read with `datasets` from the hub "
        "or the local datasets cache, or `declared`), or another remote location (s3://, gs://, nds://, https://) "
        "with `declared` counts. Null only for a mixture (data.mixture names its datasets).",
    )
    format: DataFormat = Field(
        description="prompt_completion {prompt, completion}; messages {messages: [{role, content}]} (the OpenAI chat "
        "format); preference {prompt, chosen, rejected}; unpaired_preference {prompt, completion, label: true|false} "
        "(KTO; validation/ holds preference pairs); prompt_answer {prompt, answer}; documents {text} (RAG); alpaca "
        "{instruction, input (optional), output}: trains as prompt/completion; sharegpt {conversations: [{from, "
        "value}]}, from human, gpt or system: trains as messages. Files: .jsonl, .csv (a header row; cells are "
        "strings) or .parquet. A mixture: the format the mix trains as (prompt_completion, messages, ...); each part "
        "has its own."
    )
    declared: Declared | None = Field(
        None,
        description="Counts for remote data, used as declared (not measured): required for s3://, gs://, nds://, "
        "https://; for hf:// they stand in for reading the dataset (planning offline). Ignored for local data.",
    )
    subset: str | None = Field(None, min_length=1, description="hf:// only: the dataset's configuration name.")
    splits: HubSplits = Field(default_factory=HubSplits, description="hf:// only: the splits that train and validate.")

    @property
    def is_remote(self) -> bool:
        return self.path is not None and self.path.startswith(REMOTE_SCHEMES)

    @property
    def is_builtin(self) -> bool:
        return self.path is not None and self.path.startswith("builtin:")

    @property
    def is_hub(self) -> bool:
        return self.path is not None and self.path.startswith("hf://")

    @property
    def hub_repo(self) -> str:
        """org/name of an hf:// path."""
        return (self.path or "").removeprefix("hf://").partition("@")[0]

    @property
    def hub_revision(self) -> str | None:
        """The revision after @ of an hf:// path (a branch, tag or commit), if pinned."""
        return (self.path or "").partition("@")[2] or None

    @model_validator(mode="after")
    def _remote_needs_counts(self) -> Source:
        if self.is_hub:
            if not _HUB_REPO.match(self.hub_repo) or ".." in self.hub_repo:
                raise PydanticCustomError(
                    "hub_id",
                    f"{self.path!r} is not a Hugging Face dataset id: hf://<org>/<name>, optionally @<revision>",
                    {"field": "path"},
                )
            rev = self.hub_revision
            if (self.path or "").endswith("@") or (rev is not None and not _HUB_REVISION.match(rev)):
                raise PydanticCustomError(
                    "hub_id",
                    f"{self.path!r}: the revision after @ is a branch, tag or commit (letters, digits, . _ - /)",
                    {"field": "path"},
                )
        elif self.is_remote and self.declared is None:
            raise ValueError(
                f"remote data {self.path!r} needs declared counts: planning does not read remote data (it runs "
                "offline); add +data.declared.training=<records> (and declared.validation, declared.p95_tokens), or "
                "copy it into a folder with training/ and validation/ and set data.path=<dir>"
            )
        if self.is_builtin:
            rest = (self.path or "").removeprefix("builtin:")
            if not rest or "/" in rest or ".." in rest:
                raise ValueError(f"builtin data is named, not a path: builtin:<name>, got {self.path!r}")
        return self


class MixturePart(Source):
    """One dataset of a mixture and its weight."""

    path: str = Field(description="Where the dataset is: builtin:<name>, a local directory or hf://<org>/<name>.")
    weight: float = Field(
        1.0,
        gt=0,
        le=1_000_000,
        description="Its share of the mix: weights are sampling proportions (normalized to sum to 1); "
        "data.stopping_strategy says how large the mix is.",
    )


class _Named(Frozen):
    name: SafeName = Field(description="Short name; part of the output model name.")
    description: str = ""


class Data(Source, _Named):  # _Named last: its keys come first
    """A dataset: `training/` (every .jsonl, .csv and .parquet file merged) and optional `validation/`, NeMo
    layout; a Hugging Face Hub dataset (hf://); or a mixture of several with weights."""

    mixture: tuple[MixturePart, ...] = Field(
        (),
        description="Several datasets mixed by weight (data.path null). Each part's training records (usable ones, "
        "less its hold-out without a validation split) are drawn in proportion to the weights, seeded; validation "
        "is every part's validation split (or hold-out), concatenated. Formats may differ where they train alike "
        "(alpaca and prompt_completion; sharegpt and messages).",
    )
    stopping_strategy: StoppingStrategy = Field(
        "first_exhausted",
        description="How large a mixture is (as datasets.interleave_datasets): first_exhausted stops when the first "
        "part runs out, so no record repeats and the other parts are downsampled; all_exhausted goes on until every "
        "record of every part is drawn once, so the smaller shares repeat records (upsampling).",
    )

    @model_validator(mode="after")
    def _path_or_mixture(self) -> Data:
        from schemas.records import shape  # schemas.records builds on this module

        if self.mixture:
            if self.path is not None:
                raise PydanticCustomError(
                    "path_and_mixture",
                    "data.path and data.mixture are both set: a mixture names its datasets in data.mixture[i].path "
                    "(or drop data.mixture)",
                    {"field": "path", "accepts": "null"},
                )
            if len(self.mixture) < 2:
                raise PydanticCustomError(
                    "mixture_of_one",
                    "a mixture of one dataset: set data.path (and format) to it instead of data.mixture",
                    {"field": "mixture"},
                )
            if shape(self.format) != self.format:
                raise PydanticCustomError(
                    "mixture_format",
                    f"a mixture's format is the one the mix trains as: {self.format} trains as "
                    f"{shape(self.format)}, so set data.format={shape(self.format)}",
                    {"field": "format"},
                )
            for i, part in enumerate(self.mixture):
                if shape(part.format) != self.format:
                    raise PydanticCustomError(
                        "mixture_format",
                        f"{part.format} records train as {shape(part.format)}, the mixture as {self.format} "
                        "(data.format): every part must train alike",
                        {"field": f"mixture.{i}.format"},
                    )
        elif self.path is None:
            raise PydanticCustomError(
                "path_missing",
                "data.path is required (or data.mixture, a list of datasets with weights)",
                {"field": "path", "accepts": "a dataset folder, builtin:<name> or hf://<org>/<name>"},
            )
        return self


# --- how a stage reads the data (StageData in schemas.plan)


class HubSource(Frozen):
    """A Hugging Face Hub dataset as a stage loads it: datasets.load_dataset(repo, subset, revision=, split=), from
    the local datasets cache (HF_DATASETS_CACHE) or the Hub."""

    repo: str = Field(description="org/name.")
    revision: str | None = Field(None, description="The revision pinned in data.path (hf://org/name@revision).")
    subset: str | None = None
    training_split: str
    validation_split: str | None = Field(description="Null: the hold-out validates.")
    training_rows: int | None = Field(
        description="Rows of the training split when planned; the stage refuses another count (the dataset changed: "
        "re-plan). Null for declared counts: not checked."
    )


class PartData(Frozen):
    """One dataset of a mixture as a stage reads it, and how many of its records the mix draws."""

    key: str = Field(description="data.mixture[<i>].")
    format: DataFormat
    root: str | None = Field(None, description="Absolute dataset folder; null for a Hub dataset.")
    files: tuple[DataFile, ...] = ()
    hub: HubSource | None = None
    holdout: bool = Field(description="It has no validation split: holdout_fraction of its usable records validate.")
    pool: int = Field(description="Usable training records it gives the mix, as planned (after the hold-out).")
    drawn: int = Field(description="Records of the mix drawn from it (the plan's data_stats.mixture[i].drawn).")


class Mixture(Frozen):
    """How a stage builds a mixture: each part's usable training records (its seeded hold-out removed), `drawn`
    of them (a seeded sample without repeats, or every record drawn // pool times and a seeded sample of the rest),
    all shuffled with `seed`; validation is the parts' validation records (and hold-outs), concatenated."""

    stopping_strategy: StoppingStrategy
    seed: int
    parts: tuple[PartData, ...]


class BadLine(Frozen):
    """A line with a problem (unusable, empty, a duplicate), with where it is: the line of a JSONL or CSV file (where
    the CSV row starts), the row of a Parquet file (from 1)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class DataFile(Frozen):
    """One data file and its fingerprint: the runtime refuses a file whose size or hash changed since planning."""

    path: str = Field(description="Relative to the dataset folder in the statistics; absolute in a stage.")
    bytes: int = Field(ge=0)
    sha256: str


class SplitStats(Frozen):
    """What one split holds, as probed."""

    files: tuple[str, ...] = ()
    digests: tuple[DataFile, ...] = Field((), description="Size and sha256 of each file, in `files` order.")
    records: int = Field(0, description="Lines that are records of the format, with fields of the right types.")
    usable: int | None = Field(
        None,
        description="Records a trainer can learn from: no empty text field, and for preference pairs chosen != "
        "rejected. Null when the data was not read (declared counts): `records` stands in.",
    )
    unique: int | None = Field(
        None,
        description="Usable records once exact duplicates (by a hash of the whitespace-normalized record) are "
        "dropped: what the data floors count. Null when the data was not read.",
    )
    invalid: tuple[BadLine, ...] = Field(
        (), description="The first lines that are not records: bad JSON, missing fields, fields of the wrong type."
    )
    invalid_total: int = 0
    fields: dict[str, int] = Field(default_factory=dict, description="How many records have each field.")
    empty: int = Field(0, description="Records whose required text fields are empty.")
    empty_at: tuple[BadLine, ...] = Field((), description="Where the first empty records are.")
    duplicates: int = Field(0, description="Usable records that repeat an earlier one (whitespace aside).")
    duplicate_at: tuple[BadLine, ...] = Field((), description="Where the first duplicates are, and what they repeat.")
    near_duplicates: int = Field(
        0, description="Unique records equal to an earlier one once case, punctuation and spacing are folded."
    )
    near_duplicate_rate: float = Field(0.0, description="near_duplicates / unique, rounded to 4 places.")
    near_duplicate_at: tuple[BadLine, ...] = Field((), description="Where the first near duplicates are.")
    in_training: int = Field(
        0,
        description="Validation only: unique records that repeat a training record (case, punctuation and spacing "
        "folded): scored on them, the model is tested on what it was trained on.",
    )
    in_training_at: tuple[BadLine, ...] = Field((), description="The first such records, and what each repeats.")
    same_chosen_rejected: int = 0
    same_chosen_rejected_at: tuple[BadLine, ...] = Field((), description="Where the first such pairs are.")
    unparsable_answers: int = 0
    tokens_p50: int = 0
    tokens_p95: int = 0
    tokens_max: int = 0
    tokens_total: int = 0
    tokens_longest: tuple[int, ...] = Field(
        (),
        description=f"Estimated tokens of the longest records, longest first (at most {LONGEST_KEPT}): how many "
        "a sequence length would cut.",
    )

    @property
    def examples(self) -> int:
        """Usable unique records, or the record count where the data was not read."""
        return self.unique if self.unique is not None else self.records

    @property
    def rows(self) -> int:
        """Records the trainer gets: the usable ones, duplicates included (the records where the data was not read)."""
        return self.usable if self.usable is not None else self.records

    @model_validator(mode="after")
    def _counts_nest(self) -> SplitStats:
        if not (self.examples <= self.rows <= self.records):
            raise ValueError(f"counts must nest: unique {self.unique} <= usable {self.rows} <= records {self.records}")
        return self

    def longer_than(self, tokens: int) -> tuple[int, bool]:
        """(records estimated longer than `tokens`, exact?): not exact when every kept length is longer."""
        n = sum(1 for t in self.tokens_longest if t > tokens)
        exact = n < len(self.tokens_longest) or len(self.tokens_longest) >= self.records
        return n, exact


class HubStats(Frozen):
    """A Hugging Face Hub dataset as planned: which splits, and how much of them was read."""

    repo: str = Field(description="org/name.")
    revision: str | None = Field(None, description="The pinned revision (hf://org/name@revision), if any.")
    subset: str | None = None
    training_split: str
    validation_split: str | None = Field(description="Null: the hold-out validates.")
    sampled: int = Field(0, ge=0, description="Records read per split to measure quality and tokens (0: declared).")
    training_rows: int | None = Field(
        None, ge=0, description="Rows of the training split, every row (records or not); null for declared counts."
    )


class DataStats(Frozen):
    """Everything the planner knows about the data. Probed once; the only I/O before planning."""

    source: Literal["local", "builtin", "remote", "hub", "mixture"]
    counts: Literal["measured", "sampled", "declared"] = Field(
        "measured",
        description="measured: every record was read; sampled: the record counts are the dataset's own (Hub "
        "metadata), quality and token lengths come from the first records of each split; declared: data.declared, "
        "nothing was read.",
    )
    root_files: tuple[str, ...] = Field((), description="Data files in the dataset root instead of training/.")
    training: SplitStats = Field(default_factory=SplitStats)
    validation: SplitStats | None = None
    fingerprint: str = Field(description="Content hash of the data files (or of the declaration).")
    root: str | None = Field(
        None,
        description="Absolute folder of local and builtin data, for the runtime; null for remote data. "
        "Not part of the plan id.",
    )
    token_estimate: Literal["chars/4", "tokenizer", "declared", "none"] = Field(
        "chars/4",
        description="How token lengths were counted: chars/4 (characters / knowledge.estimator.chars_per_token), "
        "tokenizer (the model's own tokenizer.json), declared, or none (unknown).",
    )
    tokenizer: str | None = Field(
        None, description="sha256 (16 hex) of the tokenizer.json that counted the tokens (token_estimate tokenizer)."
    )
    hub: HubStats | None = None
    mixture: tuple[PartStats, ...] = Field(
        (),
        description="A mixture's datasets, each probed on its own; `training` and `validation` above are the mix.",
    )

    @property
    def examples(self) -> int:
        """Training examples as the data floors and the ladder count them: usable and unique."""
        return self.training.examples


class PartStats(Frozen):
    """One dataset of a mixture as probed, and its share of the mix."""

    key: str = Field(description="Its key path: data.mixture[<i>].")
    path: str
    format: DataFormat
    weight: float
    share: float = Field(description="weight / the sum of the weights: its sampling proportion.")
    stats: DataStats
    pool: int = Field(
        ge=0, description="Training records it can give: the usable ones (the count where not read), less held_out."
    )
    held_out: int = Field(0, ge=0, description="Training records held out for validation (it has no validation).")
    drawn: int = Field(
        ge=0,
        description="Records the mix draws from it: fewer than pool is a seeded sample without repeats "
        "(downsampling); more repeats its records (each one drawn // pool times, then a seeded sample of the "
        "rest: upsampling).",
    )


DataStats.model_rebuild()
