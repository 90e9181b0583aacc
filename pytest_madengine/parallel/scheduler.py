"""GPU-aware ordering for pytest-xdist: largest GPU request first, two tests queued per worker.

The scheduler hands out pending tests largest GPU request first (-1 = whole node, then n_gpus
descending, ties in collection order), keeping each worker's queue at the 2 tests xdist needs
(the one running and the next), so the global order — not an early chunking — decides what
runs next. xdist is imported only inside ``make_scheduler_class`` (it is optional).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import pytest

from .gpus import GpuPool

Demand = Callable[[str], int]
MAX_AUTO_WORKERS = 64


class WorkerNode(Protocol):
    """The part of xdist's ``WorkerController`` the scheduler uses."""

    shutting_down: bool

    def shutdown(self) -> None: ...


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

        def __init__(self, config: pytest.Config, log: object, demand: Demand) -> None:
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

        def check_schedule(self, node: WorkerNode, duration: float = 0) -> None:
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
