"""The local Docker target: one container per model run through the Docker SDK."""
from __future__ import annotations

from .target import LocalTarget

__all__ = ["LocalTarget"]
