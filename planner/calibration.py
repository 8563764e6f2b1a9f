"""Read a calibration file (calibration=<path>): the one place the planner reads it, at the edge, into the Spec."""

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
