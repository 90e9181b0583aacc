"""The SLURM target: job configuration, rendering, the job CLI, the spec file and the per-node runner."""
from __future__ import annotations

from .target import SlurmTarget

__all__ = ["SlurmTarget"]
