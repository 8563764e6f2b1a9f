"""Memory on the device a stage runs on: the allocator settings a training process needs, the peak it reached,
and that peak beside the plan's estimate (status.json: peak_memory_bytes, estimated_memory_bytes, memory_ratio,
tokens_per_second, estimated_tokens_per_second, tokens_per_second_ratio).

CPU: glibc keeps freed heap memory for reuse, and its dynamic mmap threshold grows with the first large frees,
so after a few steps tensors of a few MB come from a heap that never shrinks: peak RSS then counts memory no
tensor holds (measured: the 110M LoRA micro batch 8 run peaked at 1.50x its estimate with the default, 1.16x
with a fixed 256 KiB threshold). `settle_allocator` fixes the threshold with mallopt before the model loads,
which is what MALLOC_MMAP_THRESHOLD_=262144 in the environment does, without relying on the launch script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024  # bytes: larger allocations get their own mapping, returned to the OS when freed
WARN_RATIO = 1.10  # a measured peak more than 10% over the plan is a warning in the gate report


def settle_allocator(on_cpu: bool) -> bool:
    """On CPU with glibc: a fixed mmap threshold (and trim threshold) so that freed tensors leave RSS. Returns
    whether it was applied (not on GPU, where the CUDA caching allocator holds tensors, nor without glibc)."""
    if not on_cpu or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    if ok:
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))  # child processes (data workers) too
    return ok


def current_rss() -> int:
    """Resident set size now (bytes), from /proc; 0 where there is none."""
    return _proc_status("VmRSS")


def peak_rss() -> int:
    """Peak resident set size since the start or the last reset_peak_rss (bytes)."""
    return _proc_status("VmHWM")


def reset_peak_rss() -> bool:
    """Start a new peak (Linux: writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _proc_status(key: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def planned(estimate: Any) -> dict[str, Any]:
    """The plan's numbers for the comparison: its total memory per GPU and its tokens/s (None where it has none)."""
    memory = getattr(estimate, "memory_per_gpu_bytes", None)  # getattr(None, ...) is the default
    return {
        "estimated_memory_bytes": memory.total if memory is not None else None,
        "estimated_tokens_per_second": getattr(estimate, "tokens_per_second", None),
        "estimated_widest_batch_tokens": getattr(estimate, "widest_batch_tokens", None),
    }


def compare(measured: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """Measured against planned: the plan's numbers and the ratios (measured / planned; None where either is
    missing), and whether the memory ratio is over WARN_RATIO."""
    out = dict(plan)
    out["memory_ratio"] = _ratio(measured.get("peak_memory_bytes"), plan.get("estimated_memory_bytes"))
    out["tokens_per_second_ratio"] = _ratio(measured.get("tokens_per_second"), plan.get("estimated_tokens_per_second"))
    out["memory_over_plan"] = out["memory_ratio"] is not None and out["memory_ratio"] > WARN_RATIO
    return out


def _ratio(measured: Any, planned: Any) -> float | None:
    if not isinstance(measured, int | float) or not isinstance(planned, int | float) or planned <= 0:
        return None
    return round(float(measured) / float(planned), 3)
