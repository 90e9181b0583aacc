"""Typed stash keys shared by the plugin's modules.

Imported by plugin.py at start-up so the keys outlive module reloads (pytester's in-process
runs drop lazily imported modules between sessions).
"""
from __future__ import annotations

from typing import Any

import pytest

SESSION_KEY = pytest.StashKey[Any]()  # the MadSession of this process
RESULT_KEY = pytest.StashKey[Any]()  # an item's ModelResult, once known
RECORDED_KEY = pytest.StashKey[bool]()  # the item's result was attached to a report
GPU_RELEASE_KEY = pytest.StashKey[Any]()  # gives the item's GPUs back (callable, idempotent)
