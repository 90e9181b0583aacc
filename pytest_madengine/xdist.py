"""xdist-only hooks: session dir to workers, largest-first scheduling, ``-n auto``, GPU feed.

Registered only when pytest-xdist is present (the hooks do not exist without it). Correctness
(disjoint GPU sets) is the allocator's job (``parallel.gpus``); the order is the scheduler's
(``parallel.scheduler``); this module wires them into xdist:

- ``-n auto`` = the number of GPUs in the pool (each worker runs one model at a time, so more
  workers than GPUs could never run concurrently), or the CPU count without a pool;
- with ``-v`` the controller prints one line per allocation event read from
  ``gpu-allocations.jsonl`` (acquire / release / reclaim), each time a report arrives;
- a worker that dies has its GPUs reclaimed at once (the allocator checks the pid).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .parallel.gpulog import AllocationFeed
from .parallel.gpus import EVENTS_NAME, GpuAllocator, GpuPool
from .parallel.scheduler import Demand, auto_workers, make_scheduler_class


class XdistHooks:
    """Controller-side xdist hooks; the session's dir and GPU pool are given as callables."""

    def __init__(self, config: pytest.Config, demand: Demand | None = None, *,
                 session_dir: Callable[[], Path], pool: Callable[[], GpuPool],
                 on_worker_down: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._demand = demand
        self._session_dir = session_dir
        self._pool = pool
        self.on_worker_down = on_worker_down
        self._feed: AllocationFeed | None = None

    def demand(self, nodeid: str) -> int:
        if self._demand is None:
            return 0
        return self._demand(nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["mad_session_dir"] = str(self._session_dir())

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "load":
            return None  # the user chose another distribution mode: leave it to xdist
        return make_scheduler_class()(config, log, self.demand)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_auto_num_workers(self, config: pytest.Config) -> int | None:
        return auto_num_workers(config)  # only reached if registered before cmdline_main

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        if error is None:
            return
        self.reap()
        if self.on_worker_down is not None:
            self.on_worker_down(str(node.gateway.id))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.config.option.verbose < 1:
            return
        if self._feed is None:
            self._feed = AllocationFeed(self._session_dir() / EVENTS_NAME)
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        for line in self._feed.new_lines():
            if terminal is not None:
                terminal.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        self.reap()  # workers killed by Ctrl-C or a crash leave holds behind: clear them now

    def reap(self) -> int:
        try:
            return GpuAllocator(self._session_dir(), self._pool()).reap()
        except (OSError, KeyError):
            return 0


def auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: the size of the GPU pool the session will use (CPU count without one).

    xdist asks in its ``pytest_cmdline_main``, before ``pytest_configure`` creates the MAD
    session, so plugin.py must answer through a module-level
    ``@pytest.hookimpl(optionalhook=True) pytest_xdist_auto_num_workers`` calling this; the
    pool is resolved here exactly as the session will (options, context, environment, host).
    """
    from . import settings as _settings
    from .errors import MadError

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or not _settings.is_active(config):
        return None  # the user's explicit choice, or not a MAD run: xdist's own answer
    try:
        from .context import build_context
        from .images.manifest_context import manifest_layer

        settings = _settings.from_config(config)
        context = build_context(context_file=settings.context_file, context_text=settings.context,
                                gpus_option=settings.gpus, base=manifest_layer(settings.manifest))
        pool = GpuPool.resolve(gpus_option=settings.gpus, context_gpus=context.get("docker_gpus"),
                               env=os.environ, detected_count=context.host.gpu_count)
    except (MadError, pytest.UsageError):
        return None  # the session reports the bad option properly; size like xdist meanwhile
    return auto_workers(pool, os.cpu_count())


def queued_job_workers(config: pytest.Config) -> int | None:
    """Workers to start when a SLURM or Kubernetes session gave no ``-n``, so several jobs run at once.

    Each xdist worker submits one job and follows it, so N workers keep N jobs in the queue
    (``--mad-slurm-jobs``, ``--mad-k8s-jobs``). Not used when the user chose ``-n`` (0 included), a ``--dist`` mode,
    ``--pdb``, ``--collect-only``, ``--mad-build-only``, or when pytest-xdist is not loaded.
    """
    from . import settings as _settings
    from .errors import MadError

    option = config.option
    if (getattr(config, "workerinput", None) is not None or not config.pluginmanager.hasplugin("xdist")
            or getattr(option, "numprocesses", 0) is not None or getattr(option, "dist", "no") != "no"
            or option.collectonly or config.getoption("usepdb", False) or not _settings.is_active(config)):
        return None
    try:
        from .context import build_context
        from .images.manifest_context import manifest_layer
        from .targets.registry import infer_target

        settings = _settings.from_config(config)
        if settings.build_only:
            return None
        context = build_context(context_file=settings.context_file, context_text=settings.context,
                                gpus_option=settings.gpus, base=manifest_layer(settings.manifest))
    except (MadError, pytest.UsageError):
        return None  # the session reports the bad option properly
    workers = {"slurm": settings.slurm_jobs, "k8s": settings.k8s_jobs}.get(
        infer_target(settings.target, context.data), 1)
    return workers if workers > 1 else None
