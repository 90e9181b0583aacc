"""pytest-madengine: AI/ML benchmark models of a MAD package as pytest tests.

The names in ``__all__`` are the public face for extensions (a target or a result output in a
conftest.py or plugin; walk-through in EXTENDING.md). They are loaded on first use, so importing
the package (as pytest does for the plugin) stays cheap.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "Target": "pytest_madengine.targets.base",
    "TargetSettings": "pytest_madengine.targets.base",
    "RunRequest": "pytest_madengine.workload.run",
    "RunOutcome": "pytest_madengine.workload.run",
    "Workload": "pytest_madengine.workload.plan",
    "plan_workload": "pytest_madengine.workload.plan",
    "ModelResult": "pytest_madengine.records",
    "ImageRef": "pytest_madengine.records",
    "ModelCard": "pytest_madengine.cards",
    "Context": "pytest_madengine.context",
    "Settings": "pytest_madengine.settings",
    "ResultSink": "pytest_madengine.results.sinks",
    "MadError": "pytest_madengine.errors",
}
__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .cards import ModelCard
    from .context import Context
    from .errors import MadError
    from .records import ImageRef, ModelResult
    from .results.sinks import ResultSink
    from .settings import Settings
    from .targets.base import Target, TargetSettings
    from .workload.plan import Workload, plan_workload
    from .workload.run import RunOutcome, RunRequest


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_madengine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
