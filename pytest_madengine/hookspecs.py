"""Hooks pytest-madengine offers to MAD packages (conftest.py) and other plugins.

Implement them in a package's conftest.py or a plugin module; each spec shows an example.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .cards import ModelCard
    from .context import Context
    from .records import ModelResult
    from .targets.base import Target, TargetSettings
    from .workload.run import RunOptions

hookspec = pytest.hookspec


@hookspec
def pytest_madengine_adjust_context(config: pytest.Config, context: dict[str, object]) -> None:
    """Adjust the merged run context (host facts + user context) in place, once per session.

    Example::

        def pytest_madengine_adjust_context(config, context):
            context["docker_env_vars"]["HF_HOME"] = "/data/hf"
    """


@hookspec
def pytest_madengine_docker_run_options(card: ModelCard, context: Context, options: RunOptions) -> None:
    """Adjust the Docker SDK ``containers.run`` keyword arguments for one model, in place.

    ``options`` holds e.g. ``environment``, ``volumes``, ``devices``, ``device_requests``,
    ``cap_add``, ``shm_size``, ``labels``. Do not remove the ``labels``: cleanup relies on them.

    Example::

        def pytest_madengine_docker_run_options(card, context, options):
            if "large" in card.tags:
                options["shm_size"] = "64g"
    """


@hookspec(firstresult=True)
def pytest_madengine_parse_performance(card: ModelCard, log_text: str) -> tuple[str, str] | None:
    """Return ``(performance, metric)`` found in a model's log, or None to use the default.

    Example::

        def pytest_madengine_parse_performance(card, log_text):
            match = re.search(r"throughput=([0-9.]+)", log_text)
            return (match.group(1), "samples/s") if match else None
    """


@hookspec
def pytest_madengine_process_result(card: ModelCard, result: ModelResult) -> None:
    """Post-process a judged result (e.g. add rows, change status) before it is recorded.

    Runs where the test ran (an xdist worker, or the only process).
    """


@hookspec(firstresult=True)
def pytest_madengine_make_target(name: str, settings: TargetSettings) -> Target | None:
    """Create the target called ``name`` (``--mad-target``, or inferred from the context), or
    return None to leave it to the next implementation; the built-in targets come last.

    Called once per process (the controller and every xdist worker). The returned object
    implements ``pytest_madengine.targets.base.Target``: ``sweep_stale``, ``run``,
    ``cancel_all``, ``close``, and the attributes ``name`` and ``deployment_type``.

    Example (a conftest.py adding a target)::

        def pytest_madengine_make_target(name, settings):
            if name == "dry-run":
                return DryRunTarget(settings.session_id)
    """


@hookspec
def pytest_madengine_result_recorded(config: pytest.Config, result: ModelResult) -> None:
    """A result has been recorded (perf.csv row appended, summary updated).

    Controller only, once per result, in the order reports arrive: the place for a conftest to
    push results elsewhere (a dashboard, a chat message). ``result.nodeid`` names the test.
    """
