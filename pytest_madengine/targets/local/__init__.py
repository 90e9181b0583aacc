"""The local Docker target: one container per model run through the Docker SDK.

The target class is imported on first use (``LocalTarget``), like the other targets' classes.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .target import LocalTarget

__all__ = ["LocalTarget"]


def __getattr__(name: str) -> object:
    if name == "LocalTarget":
        return importlib.import_module(".target", __name__).LocalTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
