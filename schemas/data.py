"""Data declarations (what the team has) and the statistics probed from the files."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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
    """Counts declared for data that is not on this machine (remote datasets)."""

    training: int = Field(ge=0)
    validation: int | None = Field(None, ge=0)
    p95_tokens: int | None = Field(None, gt=0, description="95th percentile of record length in tokens, if known.")


class Data(Frozen):
    """A dataset: `training/` (every .jsonl, .csv and .parquet file merged) and optional `validation/`, NeMo
    layout."""

    name: SafeName = Field(description="Short name; part of the output model name.")
    description: str = ""
    path: str = Field(
        description="builtin:<name> for a shipped sample, a local directory (relative to the working "
        "directory), or a remote location (hf://, s3://, gs://, nds://, https://) with `declared` counts."
    )
    format: DataFormat = Field(
        description="prompt_completion {prompt, completion}; messages {messages: [{role, content}]} (the OpenAI chat "
        "format); preference {prompt, chosen, rejected}; unpaired_preference {prompt, completion, label: true|false} "
        "(KTO; validation/ holds preference pairs); prompt_answer {prompt, answer}; documents {text} (RAG); alpaca "
        "{instruction, input (optional), output}: trains as prompt/completion; sharegpt {conversations: [{from, "
        "value}]}, from human, gpt or system: trains as messages. Files: .jsonl, .csv (a header row; cells are "
        "strings) or .parquet."
    )
    declared: Declared | None = Field(None, description="Counts for remote data; ignored for local data.")

    @property
    def is_remote(self) -> bool:
        return self.path.startswith(REMOTE_SCHEMES)

    @property
    def is_builtin(self) -> bool:
        return self.path.startswith("builtin:")

    @model_validator(mode="after")
    def _remote_needs_counts(self) -> Data:
        if self.is_remote and self.declared is None:
            get = (
                f"huggingface-cli download --repo-type dataset {self.path.removeprefix('hf://')} --local-dir <dir>"
                if self.path.startswith("hf://")
                else "copy it"
            )
            raise ValueError(
                f"remote data {self.path!r} needs declared counts: planning does not read remote data (it runs "
                "offline); add +data.declared.training=<records> (and declared.validation, declared.p95_tokens), or "
                f"download it ({get}) into a folder with training/ and validation/ and set data.path=<dir>"
            )
        if self.is_builtin:
            rest = self.path.removeprefix("builtin:")
            if not rest or "/" in rest or ".." in rest:
                raise ValueError(f"builtin data is named, not a path: builtin:<name>, got {self.path!r}")
        return self


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


class DataStats(Frozen):
    """Everything the planner knows about the data. Probed once; the only I/O before planning."""

    source: Literal["local", "builtin", "remote"]
    root_files: tuple[str, ...] = Field((), description="Data files in the dataset root instead of training/.")
    training: SplitStats = Field(default_factory=SplitStats)
    validation: SplitStats | None = None
    fingerprint: str = Field(description="Content hash of the data files (or of the declaration).")
    root: str | None = Field(
        None,
        description="Absolute folder of local and builtin data, for the runtime; null for remote data. "
        "Not part of the plan id.",
    )
    token_estimate: Literal["chars/4", "declared", "none"] = "chars/4"

    @property
    def examples(self) -> int:
        """Training examples as the data floors and the ladder count them: usable and unique."""
        return self.training.examples
