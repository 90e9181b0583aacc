"""Hooks pytest-madengine offers to MAD packages (conftest.py) and other plugins."""
from __future__ import annotations

from typing import Any

import pytest

hookspec = pytest.hookspec


@hookspec
def pytest_madengine_adjust_context(config: pytest.Config, context: dict[str, Any]) -> None:
    """Adjust the merged run context (host facts + user context) in place, once per session."""


@hookspec
def pytest_madengine_docker_run_options(card: Any, context: Any, options: dict[str, Any]) -> None:
    """Adjust the Docker SDK ``containers.run`` keyword arguments for one model, in place.

    ``options`` holds e.g. ``environment``, ``volumes``, ``devices``, ``device_requests``,
    ``cap_add``, ``shm_size``, ``labels``. Do not remove the ``labels``: cleanup relies on them.
    """


@hookspec(firstresult=True)
def pytest_madengine_parse_performance(card: Any, log_text: str) -> tuple[str, str] | None:
    """Return ``(performance, metric)`` found in a model's log, or None to use the default."""


@hookspec
def pytest_madengine_process_result(card: Any, result: Any) -> None:
    """Post-process a judged ``ModelResult`` (e.g. add rows, change status) before recording."""
