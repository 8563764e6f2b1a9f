"""Frozen pydantic schemas: the user-facing Spec and the Plan contract.

One file per domain. Nothing here imports torch or does I/O.
"""

from schemas.data import BadLine, Data, DataFormat, DataStats, Declared, SplitStats
from schemas.goal import Goal, Serving
from schemas.inventory import Gpu, Inventory
from schemas.knowledge import Knowledge
from schemas.launcher import Launcher
from schemas.layout import LayoutRequest
from schemas.method import (
    Auto,
    Dpo,
    EarlyStopping,
    Grpo,
    Lora,
    LoraParams,
    Method,
    MethodKind,
    Prompting,
    Rag,
    Sft,
    TrainMethod,
)
from schemas.model import URN, Architecture, CustomizationConfig, Model, TrainingOption
from schemas.plan import (
    Alternative,
    Artifacts,
    Decision,
    Estimate,
    Finding,
    Layout,
    MemoryBreakdown,
    Plan,
    Rung,
    Stage,
)
from schemas.spec import Eval, Spec

__all__ = [
    "URN",
    "Alternative",
    "Architecture",
    "Artifacts",
    "Auto",
    "BadLine",
    "CustomizationConfig",
    "Data",
    "DataFormat",
    "DataStats",
    "Decision",
    "Declared",
    "Dpo",
    "EarlyStopping",
    "Estimate",
    "Eval",
    "Finding",
    "Goal",
    "Gpu",
    "Grpo",
    "Inventory",
    "Knowledge",
    "Launcher",
    "Layout",
    "LayoutRequest",
    "Lora",
    "LoraParams",
    "MemoryBreakdown",
    "Method",
    "MethodKind",
    "Model",
    "Plan",
    "Prompting",
    "Rag",
    "Rung",
    "Serving",
    "Sft",
    "Spec",
    "SplitStats",
    "Stage",
    "TrainMethod",
    "TrainingOption",
]
