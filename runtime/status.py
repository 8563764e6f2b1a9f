"""status.json (atomic rewrite) and metrics.jsonl (append), written by rank 0 only.

What a SIGKILL may leave: status.json and every other JSON file are replaced whole (a temporary file in the same
folder + os.replace), so a reader sees the old or the new content, never a torn one. metrics.jsonl gets each line
in one write(2) on an O_APPEND descriptor; a line cut short by a kill can only be the last one, and readers
(read_jsonl) skip it; a resumed stage rewrites the file (replace_jsonl) before it appends again.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# requeued: stopped at Slurm's time-limit warning with a checkpoint saved; the job runs again and resumes from it.
STATES = ("created", "running", "completed", "failed", "cancelled", "requeued")


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second (status.json's updated_at, metrics.jsonl's time)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Status:
    """The lifecycle file of one stage; every update rewrites it atomically (temp file + rename)."""

    def __init__(self, path: Path, *, plan_id: str, stage: str, writer: bool = True):
        self.path = path
        self.writer = writer
        self.data: dict[str, Any] = {"plan_id": plan_id, "stage": stage, "state": "created"}
        # What the last attempt recorded ({} if none): a rerun (resume) of the same plan keeps it; a status
        # left by another plan is a different run, and starts over.
        self.previous: dict[str, Any] = {}
        if path.exists():
            try:
                previous = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                previous = None
            self.previous = previous if isinstance(previous, dict) else {}
            if self.previous.get("plan_id") == plan_id:
                self.data.update(self.previous)
        self.data["attempts"] = int(self.data.get("attempts", 0)) + 1

    def update(self, **fields: Any) -> None:
        state = fields.get("state")
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        self.data.update(fields)
        self.data["updated_at"] = utc_now()
        if not self.writer:
            return
        write_json_atomic(self.path, self.data)

    def __getitem__(self, key: str) -> Any:
        return self.data.get(key)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """`text` as the whole of `path`: written to a temporary file beside it, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """`records` as the whole of a .jsonl file, replaced atomically (a kill keeps the old file or the new one)."""
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


class Metrics:
    """metrics.jsonl: one JSON object per logging step or epoch, each line appended in one write(2)."""

    def __init__(self, path: Path, writer: bool = True):
        self.path = path
        self.writer = writer

    def write(self, **record: Any) -> None:
        """Append one line; `time` (UTC, ISO 8601) is when it was written unless the record carries one."""
        if not self.writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps({"time": utc_now(), **record}, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):  # a full disk mid-line: fail here (readers skip the torn line)
                raise OSError(errno.ENOSPC, f"wrote {written} of {len(line)} bytes of a metrics line", str(self.path))
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a .jsonl file; a torn last line (a killed writer) is skipped, not fatal."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out
