"""A calibration file: what `python -m planner.calibrate` measured on one kind of device, as corrections the
estimator applies to its priors (docs/estimator.md, "Calibration").

`calibration=<path>` on the planner's command line reads the file (YAML or JSON) into Spec.calibration; the
estimator then uses the entry of the inventory's GPU type, and the report says which numbers are calibrated.
"""

from __future__ import annotations

from pydantic import Field

from schemas.base import Frozen

MEMORY_TERMS = ("weights", "grads", "optimizer", "adapters", "reference_model", "activations", "logits", "kv_cache")


class Measured(Frozen):
    """One calibration case: the estimate beside what the device measured."""

    case: str = Field(description="method and micro batch, e.g. lora-mb4.")
    model: str = Field(description="The architecture measured (catalog name), with the layers it was scaled to.")
    num_layers: int = Field(ge=1, description="Decoder layers of the random-initialised model measured.")
    micro_batch: int = Field(ge=1)
    seq: int = Field(ge=1)
    estimated_bytes: int = Field(ge=0, description="The estimator's total (uncalibrated) for this case.")
    peak_bytes: int = Field(ge=0, description="Measured peak: CUDA max reserved on GPU, peak RSS on CPU.")
    tokens_per_second: float = Field(ge=0)
    mfu: float = Field(ge=0, description="Measured model FLOPs utilisation of the training steps.")


class DeviceCalibration(Frozen):
    """Corrections for one GPU type (`inventory.gpu.name`)."""

    device: str = Field(description="What measured it: the torch device and its name.")
    measured_on: str = Field(description="The inventory calibrated and the command that wrote the file.")
    memory_factors: dict[str, float] = Field(
        default_factory=dict,
        description="Measured / estimated per memory term (weights, grads, optimizer, adapters, activations, "
        "logits, ...); a term not listed keeps its prior (factor 1).",
    )
    overhead_bytes: int | None = Field(
        None, ge=0, description="Measured fixed cost (process, context); replaces the overhead prior."
    )
    fragmentation: float = Field(1.0, ge=1.0, le=4.0, description="Allocator reserved / allocated at the peak.")
    mfu: float | None = Field(None, gt=0, le=1, description="Measured MFU; replaces the MFU prior.")
    cases: tuple[Measured, ...] = ()


class Calibration(Frozen):
    """A calibration file: entries by GPU type."""

    version: int = 1
    path: str | None = Field(None, description="Where the file was read from (set by the planner).")
    gpus: dict[str, DeviceCalibration] = Field(default_factory=dict)
