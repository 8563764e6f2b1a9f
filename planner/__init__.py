"""The planner: compose and validate config, choose the rung, check feasibility, compile bundles.

Pure and light: importing it loads no torch, transformers, peft or trl.
"""

from planner.core import plan

__all__ = ["plan"]
