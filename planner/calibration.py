"""Read a calibration file (calibration=<path>): the one place the planner reads it, at the edge, into the Spec.

Without calibration=, a team's config folder serves one: the first `calibration*.yaml` (.yml, .json) in the folders
Hydra searches (the team's hydra.searchpath folder, then the primary config folder) with an entry for the
inventory's GPU type, as python -m planner.calibrate wrote it. calibration=none uses the priors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from planner.errors import ConfigError
from schemas.calibration import Calibration


def read(path: str) -> dict[str, Any]:
    """A calibration file (YAML or JSON) as the Spec's `calibration` value, with its absolute path."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"calibration={path}: no such file",
            fix="give the path that python -m planner.calibrate printed on its last line",
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))  # JSON is YAML
        cal = Calibration.model_validate({**(data or {}), "path": str(p.resolve())})
    except Exception as exc:  # a malformed file is the user's input
        raise ConfigError(
            f"calibration={path} is not a calibration file: {exc}",
            fix="rerun python -m planner.calibrate to write one",
        ) from None
    return cal.model_dump(mode="json")


FILE_PATTERNS = ("calibration*.yaml", "calibration*.yml", "calibration*.json")


def in_folders(folders: list[str] | tuple[str, ...], gpu: str) -> str | None:
    """The first calibration file in `folders` (in order) with an entry for `gpu`; None when there is none. A file
    that is not a calibration file is an error naming it, not skipped."""
    for folder in folders:
        for pattern in FILE_PATTERNS:
            for file in sorted(Path(folder).glob(pattern)):
                if not file.is_file():
                    continue
                try:
                    data = yaml.safe_load(file.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                    raise ConfigError(
                        f"{file} (a calibration file in a config folder) is not readable YAML: {exc}",
                        fix="rerun python -m planner.calibrate to write it, or move it out of the folder",
                    ) from None
                gpus = data.get("gpus") if isinstance(data, dict) else None
                if isinstance(gpus, dict) and gpu in gpus:
                    return str(file)
    return None
