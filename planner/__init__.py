"""The planner: compose and validate config, choose the rung, check feasibility, compile bundles.

Pure and light: importing it loads no torch, transformers, peft or trl.
"""

import os

# pydantic looks for plugins by scanning every installed distribution's entry points when the first model class is
# built (~10 ms of a ~0.45 s dry run); the planner uses none. A value the user set is kept.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from planner.core import plan  # after the environment above

__all__ = ["plan"]
