"""Where models run. Every target implements targets.base.Target."""
from __future__ import annotations

from .base import Target, get_target

__all__ = ["Target", "get_target"]
