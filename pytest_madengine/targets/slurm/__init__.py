"""The SLURM target: job configuration, rendering, the job CLI, the spec file and the per-node runner.

The target class is imported on first use (``SlurmTarget``), so the light ``cli`` module (options) can be
imported without the target's dependencies.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .target import SlurmTarget

__all__ = ["SlurmTarget"]


def __getattr__(name: str) -> object:
    if name == "SlurmTarget":
        return importlib.import_module(".target", __name__).SlurmTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
