"""xdist-only hooks: session dir to workers, largest-first scheduling, ``-n auto``, GPU feed.

Registered only when pytest-xdist is present (the hooks do not exist without it). Correctness
(disjoint GPU sets) is the allocator's job (gpus.py); this module only keeps the GPUs busy:

- the scheduler hands out pending tests largest GPU request first (-1, then n_gpus descending,
  ties in collection order), keeping each worker's queue at the 2 tests xdist needs (the one
  running and the next), so the global order — not an early chunking — decides what runs next;
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

from .gpulog import AllocationFeed
from .gpus import EVENTS_NAME, GpuAllocator, GpuPool

Demand = Callable[[str], int]
MAX_AUTO_WORKERS = 64


def demand_order(nodeids: list[str], demand: Demand) -> list[int]:
    """Indices of ``nodeids``, largest GPU request first (-1 = whole node first), stable."""
    def key(index: int) -> tuple[int, int, int]:
        n = demand(nodeids[index])
        return (0 if n < 0 else 1, -n, index)

    return sorted(range(len(nodeids)), key=key)


def make_scheduler_class() -> type:
    """xdist's LoadScheduling with a GPU-aware order (imported lazily: xdist is optional)."""
    from xdist.scheduler import LoadScheduling  # type: ignore[import-untyped]

    class GpuLoadScheduling(LoadScheduling):  # type: ignore[misc]
        collection: list[str] | None
        maxschedchunk: int | None

        def __init__(self, config: pytest.Config, log: Any, demand: Demand) -> None:
            super().__init__(config, log)
            self.demand = demand

        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None:
                for node in self.nodes:
                    self.check_schedule(node)
                return
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            collection = list(next(iter(self.node2collection.values())))
            self.collection = collection
            self.pending[:] = demand_order(collection, self.demand)
            if self.maxschedchunk is None:
                self.maxschedchunk = len(collection)
            for node in self.nodes:  # round-robin, so the biggest cards start on every worker
                self._send_tests(node, 1)
            for node in self.nodes:
                self._send_tests(node, 1)
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

        def check_schedule(self, node: Any, duration: float = 0) -> None:
            if node.shutting_down:
                return
            if not self.pending:
                node.shutdown()
                return
            missing = 2 - len(self.node2pending[node])
            if missing > 0:
                self._send_tests(node, missing)

        def mark_test_pending(self, item: str) -> None:
            # a retried test goes back in its size class, not ahead of everything
            assert self.collection is not None
            self.pending.append(self.collection.index(item))
            order = {index: rank for rank, index in
                     enumerate(demand_order(self.collection, self.demand))}
            self.pending.sort(key=order.__getitem__)
            for node in self.nodes:
                self.check_schedule(node)

    return GpuLoadScheduling


def auto_workers(pool: GpuPool, cpu_count: int | None) -> int:
    if pool.ids:
        return max(1, min(len(pool.ids), MAX_AUTO_WORKERS))
    return max(1, min(cpu_count or 1, MAX_AUTO_WORKERS))


class XdistHooks:
    """Controller-side xdist hooks; the session is read lazily from ``config.stash``."""

    def __init__(self, config: pytest.Config, demand: Demand | None = None, *,
                 session_dir: Callable[[], Path] | None = None,
                 pool: Callable[[], GpuPool] | None = None,
                 on_worker_down: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._demand = demand
        self._session_dir = session_dir or (lambda: Path(self._session().session_dir))
        self._pool = pool or (lambda: self._session().gpu_allocator.pool)
        self.on_worker_down = on_worker_down
        self._feed: AllocationFeed | None = None

    def _session(self) -> Any:
        from .session import SESSION_KEY

        return self.config.stash[SESSION_KEY]

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

        settings = _settings.from_config(config)
        context = build_context(context_file=settings.context_file, context_text=settings.context,
                                gpus_option=settings.gpus)
        pool = GpuPool.resolve(gpus_option=settings.gpus, context_gpus=context.get("docker_gpus"),
                               env=os.environ, detected_count=context.host.gpu_count)
    except (MadError, pytest.UsageError):
        return None  # the session reports the bad option properly; size like xdist meanwhile
    return auto_workers(pool, os.cpu_count())


def slurm_job_workers(config: pytest.Config) -> int | None:
    """Workers to start when a SLURM session gave no ``-n``, so several jobs wait in the queue.

    Each xdist worker submits one job and follows it, so N workers keep N jobs in the queue
    (``--mad-slurm-jobs``). Not used when the user chose ``-n`` (0 included), a ``--dist`` mode,
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
        from .targets.base import infer_target

        settings = _settings.from_config(config)
        if settings.build_only or settings.slurm_jobs <= 1:
            return None
        context = build_context(context_file=settings.context_file, context_text=settings.context,
                                gpus_option=settings.gpus)
    except (MadError, pytest.UsageError):
        return None  # the session reports the bad option properly
    return settings.slurm_jobs if infer_target(settings.target, context.data) == "slurm" else None
