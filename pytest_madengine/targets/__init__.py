"""Where models run. Every target implements ``targets.base.Target``; see ``targets.builtins``."""
from __future__ import annotations

from .base import Target, TargetSettings

__all__ = ["Target", "TargetSettings"]
