"""Typed stash keys shared by the plugin's modules.

Imported by plugin.py at start-up so the keys outlive module reloads (pytester's in-process
runs drop lazily imported modules between sessions).
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

from .records import ModelResult

# The MadSession of this process; typed where it is read (session.get_session), since the session
# lives four layers above this module.
SESSION_KEY = pytest.StashKey[object]()
RESULT_KEY = pytest.StashKey[ModelResult]()  # an item's ModelResult, once known
RECORDED_KEY = pytest.StashKey[bool]()  # the item's result was attached to a report
GPU_RELEASE_KEY = pytest.StashKey[Callable[[], None]]()  # gives the item's GPUs back (idempotent)
# The session's target (``targets.base.Target``), for fixtures a target registers (its
# ``pytest_plugins``), which live below the session and cannot ask it.
TARGET_KEY = pytest.StashKey[object]()
# The process's early facts (settings + adjusted context), shared by the xdist wiring and the session.
FACTS_KEY = pytest.StashKey[object]()
