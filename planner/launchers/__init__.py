"""The launchers: how a bundle's stages run. One module each, registered here by schemas.launcher.LauncherKind.

A new launcher (Kubernetes, SkyPilot) is one module beside these, defining LAUNCHER (a base.Launcher:
its compile function, run script, templates, whether a stage may span nodes), its templates under
templates/<kind>/, its kind in schemas.launcher.LauncherKind and one line below.
"""

from __future__ import annotations

from planner.launchers import local, slurm, torchrun
from planner.launchers.base import Launcher

# schemas.launcher.LauncherKind, less `auto` (the planner resolves it) -> the launcher.
LAUNCHERS: dict[str, Launcher] = {
    "local": local.LAUNCHER,
    "torchrun": torchrun.LAUNCHER,
    "slurm": slurm.LAUNCHER,
}

__all__ = ["LAUNCHERS", "Launcher"]
