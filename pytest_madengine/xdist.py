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

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .gpus import EVENTS_NAME, GpuAllocator, GpuPool, format_gpu_list

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


class AllocationFeed:
    """Lines for allocation events appended to ``gpu-allocations.jsonl`` since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as events:
                events.seek(self.offset)
                data = events.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [describe_event(json.loads(line)) for line in complete.splitlines() if line.strip()]


def describe_event(event: dict[str, Any]) -> str:
    ids = format_gpu_list(event.get("ids") or []) or "-"
    where = f"[{event.get('worker') or '?'}]"
    name = event.get("owner", "?").rsplit("::", 1)[-1]
    if event["event"] == "acquire":
        return f"{where} GPUs {ids} -> {name} (waited {event.get('waited', 0):.1f}s)"
    if event["event"] == "release":
        return f"{where} GPUs {ids} <- {name} (held {event.get('held_for', 0):.1f}s)"
    if event["event"] == "reclaim":
        return f"{where} GPUs {ids} reclaimed from dead worker (pid {event.get('pid')}, {name})"
    return f"{where} {event['event']} ticket {event.get('ticket')} ({name})"


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
        if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
            return None  # the user's explicit choice (xdist's own hook honours it)
        return auto_workers(self._pool(), os.cpu_count())

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


class AutoWorkers:
    """``-n auto`` sizing, registered before pytest_configure (xdist asks in cmdline_main,
    before the MAD session exists), so the pool is resolved from the options here."""

    def __init__(self, detected_count: Callable[[], int] = lambda: 0,
                 context_gpus: Callable[[pytest.Config], str | None] = lambda config: None) -> None:
        self.detected_count = detected_count
        self.context_gpus = context_gpus

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_auto_num_workers(self, config: pytest.Config) -> int | None:
        from . import settings as _settings

        if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or not _settings.is_active(config):
            return None
        try:
            pool = GpuPool.resolve(gpus_option=_settings.from_config(config).gpus,
                                   context_gpus=self.context_gpus(config), env=os.environ,
                                   detected_count=self.detected_count())
        except Exception as exc:  # the session reports a bad pool properly; size by CPUs here
            from .errors import MadError

            if not isinstance(exc, (MadError, pytest.UsageError)):
                raise
            pool = GpuPool((), "none")
        return auto_workers(pool, os.cpu_count())
