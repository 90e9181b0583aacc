"""The Kubernetes target: config, objects, payload, API access, following, collection.

The target class is imported on first use (``K8sTarget``), so the light ``cli`` module (options) can be
imported without the target's dependencies.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .target import K8sTarget

__all__ = ["K8sTarget"]


def __getattr__(name: str) -> object:
    if name == "K8sTarget":
        return importlib.import_module(".target", __name__).K8sTarget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
