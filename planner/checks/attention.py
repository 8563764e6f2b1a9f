"""Checks of the attention kernel (layout.attention_implementation): where flash_attention_2 can run."""

from __future__ import annotations

from collections.abc import Iterator

from planner import resolve
from planner.checks.base import Group, finding
from planner.draft import Draft
from schemas.plan import Finding, Layout

check = Group()
PATH = "layout.attention_implementation"
SDPA = f"set {PATH}=sdpa (PyTorch's fused attention: no extra package, no seq x seq scores kept)"


def _flash(d: Draft) -> bool:
    return resolve.attention(d.spec) == "flash_attention_2"


def _asked(d: Draft) -> str:
    """How the plan came to flash_attention_2, for the messages."""
    if d.spec.layout.attention_implementation == "auto":
        return f"{PATH}=auto chose flash_attention_2"
    return f"{PATH}=flash_attention_2"


@check("attention-flash-cpu")
def _cpu(d: Draft, layout: Layout) -> Iterator[Finding]:
    if _flash(d) and d.spec.inventory.gpu.name == "cpu":
        yield finding(
            "error",
            "attention-flash-cpu",
            PATH,
            f"{_asked(d)}: flash-attn's kernels run on CUDA GPUs only, and inventory {d.spec.inventory.name} is a "
            "CPU (transformers refuses to load the model)",
            SDPA,
        )


@check("attention-flash-gpu")
def _gpu(d: Draft, layout: Layout) -> Iterator[Finding]:
    gpu = d.spec.inventory.gpu
    if not _flash(d) or gpu.name == "cpu":
        return
    supported = d.spec.knowledge.engine.flash_attention_2
    listed = ", ".join(f"{c:g}" for c in supported)
    cc = gpu.compute_capability
    if cc is None:
        yield finding(
            "warning",
            "attention-flash-gpu",
            PATH,
            f"{_asked(d)}, but the catalog entry of {gpu.display_name} ({gpu.name}) has no compute_capability, so "
            f"the planner cannot tell whether flash-attn 2 runs on it (it supports compute capability {listed})",
            f"add compute_capability to conf/gpu/{gpu.name}.yaml, or {SDPA}",
        )
    elif cc < min(supported):
        yield finding(
            "error",
            "attention-flash-gpu",
            PATH,
            f"{_asked(d)}, but {gpu.display_name} has compute capability {cc:g}: flash-attn 2 needs Ampere or newer "
            f"(compute capability {listed}) and its kernels refuse to run on it",
            SDPA,
        )
    elif cc not in supported:
        yield finding(
            "warning",
            "attention-flash-gpu",
            PATH,
            f"{_asked(d)} on {gpu.display_name} (compute capability {cc:g}), which flash-attn 2 does not list "
            f"(it supports {listed}); a build for it may not exist",
            f"check that the installed flash-attn runs on compute capability {cc:g}, or {SDPA}",
        )


@check("attention-flash-package")
def _package(d: Draft, layout: Layout) -> Iterator[Finding]:
    if _flash(d) and d.spec.inventory.gpu.name != "cpu" and d.host.flash_attn is False:
        yield finding(
            "warning",
            "attention-flash-package",
            PATH,
            f"{_asked(d)}, and the flash_attn package is not installed on this (the planning) machine; the "
            "runtime needs it wherever the stages run and stops at the model load without it (the compute nodes "
            "may differ from this one)",
            "install flash-attn in the compute nodes' environment (pip install flash-attn --no-build-isolation, "
            f"built for their torch and CUDA), or {SDPA}",
        )
