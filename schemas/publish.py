"""What the publish stage ships besides the adapter (or model) folder: a merged copy, an upload to the Hub."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from schemas.base import Frozen

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class Publish(Frozen):
    """The publish stage's options. Whatever they say, publish ships only a model whose gate passed."""

    merge: bool = Field(
        False,
        description="LoRA plans: also write the merged model (the base weights with the adapter folded in, peft "
        "merge_and_unload) as safetensors with its config and tokenizer in merged/ next to the adapter, for a "
        "server that does not load adapters. A full fine-tune's weights are whole already: ignored there.",
    )
    push_to_hub: str | None = Field(
        None,
        description="A Hugging Face Hub model repo (owner/name) that publish uploads the published folder to "
        "(huggingface_hub upload_folder, creating the repo when missing). It needs a token with write access in "
        "HF_TOKEN when publish runs and refuses without one; the local copy is written first either way. "
        "null: local only.",
    )
    private: bool = Field(True, description="push_to_hub creates a missing repo as private.")

    @field_validator("push_to_hub")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        if value is not None and not _REPO.match(value):
            raise ValueError(
                f"{value!r} is not a Hub repo id: use owner/name (letters, digits, '.', '_', '-'), "
                "e.g. my-org/tone-adapter"
            )
        return value
