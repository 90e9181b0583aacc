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
    from .results.sinks import ResultSink
    from .settings import Settings
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

    Local target only (its SLURM nodes and Kubernetes pods are not Docker SDK calls of this
    process): use ``pytest_madengine_container_options`` for settings every target applies.

    ``options`` holds e.g. ``environment``, ``volumes``, ``devices``, ``device_requests``,
    ``cap_add``, ``shm_size``, ``labels``. Do not remove the ``labels``: cleanup relies on them.

    Example::

        def pytest_madengine_docker_run_options(card, context, options):
            if "infiniband" in card.tags:
                options["devices"] = ["/dev/infiniband:/dev/infiniband:rwm"]
    """


@hookspec
def pytest_madengine_container_options(card: ModelCard, context: Context, options: RunOptions) -> None:
    """Add container settings for one model's run, on every target that runs containers: the
    target-neutral successor of ``pytest_madengine_docker_run_options`` (local target only).

    Runs where the test runs, before the target starts the model. ``options`` starts empty; set
    any of (Docker SDK shapes): ``environment`` (``{name: value}``), ``volumes`` (``{host_path:
    {"bind": container_path, "mode": "ro"|"rw"}}``), ``cap_add`` (``["SYS_NICE"]``), ``devices``
    (``["/dev/infiniband:/dev/infiniband:rwm"]``). (No ``shm_size``: the built-in targets share the
    host's IPC namespace, as madengine's ``--ipc=host``, so /dev/shm is the host's.) Per target:

    - local: all of them, merged over the target's own options (lists extend, dicts update);
    - SLURM: all of them, on every node's container (they travel in the job spec; secret-looking
      variables in its 0600 ``secrets.json``, as the context's do);
    - Kubernetes: ``environment`` (secret-looking values through the run's Secret); each other
      key is warned about once and not applied (use the ``k8s`` settings: ``host_paths``,
      ``resources``, ``host_ipc``).

    Another key is warned about once, naming it, and not applied.

    Example::

        def pytest_madengine_container_options(card, context, options):
            options["environment"] = {"NCCL_DEBUG": "INFO"}
            if "infiniband" in card.tags:
                options["devices"] = ["/dev/infiniband:/dev/infiniband:rwm"]
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
def pytest_madengine_make_target(name: str, settings: TargetSettings, config: pytest.Config) -> Target | None:
    """Create the target called ``name`` (``--mad-target``, or inferred from the context), or
    return None to leave it to the next implementation; the built-in targets come last.

    Called once per process (the controller and every xdist worker), like pytest-xdist's
    ``pytest_xdist_make_scheduler(config, log)``: ``config`` gives the target its own options
    (``config.getoption``); an implementation may take any subset of the arguments. The returned
    object implements ``pytest_madengine.Target`` (``targets/base.py``): ``sweep_stale``, ``run``,
    ``cancel_all``, ``close``, and the attributes ``name``, ``deployment_type`` and ``needs_image``.

    Example (a conftest.py adding a target that runs no container)::

        def pytest_madengine_make_target(name, settings, config):
            if name == "dry-run":
                return DryRunTarget(settings.session_id, verbose=config.getoption("verbose") > 0)
    """


@hookspec
def pytest_madengine_make_sinks(config: pytest.Config, settings: Settings) -> list[ResultSink]:
    """Return result outputs (``pytest_madengine.ResultSink``) to add next to the built-in ones.

    Controller only, once per session that runs models (not ``--collect-only``). Each sink gets
    every judged result (``record``), then ``finish()`` once; the lines ``finish`` returns are
    shown under the "MAD results" heading. A sink that raises ``OSError`` / ``MadError`` is
    reported once as a warning and the other sinks go on.

    Example (a conftest.py streaming results as JSON lines)::

        class JsonLinesSink:
            def __init__(self, path):
                self.path = path

            def record(self, result):
                with self.path.open("a") as out:
                    out.write(json.dumps(result.to_json()) + "\n")

            def finish(self):
                return [f"results streamed to {self.path}"]

        def pytest_madengine_make_sinks(config, settings):
            return [JsonLinesSink(config.rootpath / "results.jsonl")]
    """


@hookspec
def pytest_madengine_result_recorded(config: pytest.Config, result: ModelResult) -> None:
    """A result has been recorded (perf.csv row appended, summary updated).

    Controller only, once per result, in the order reports arrive: the place for a conftest to
    push results elsewhere (a dashboard, a chat message). ``result.nodeid`` names the test.
    """
