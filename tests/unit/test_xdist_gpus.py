"""The xdist side of GPU parallelism: largest-first scheduler, -n auto, the allocation feed."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_madengine.parallel.gpulog import AllocationFeed
from pytest_madengine.parallel.gpus import GpuAllocator, GpuPool
from pytest_madengine.parallel.scheduler import auto_workers, demand_order, make_scheduler_class

DEMAND = {"a": 1, "b": -1, "c": 4, "d": 2, "e": 4, "f": 1, "g": 8, "h": 0}


class FakeConfig:
    def __init__(self, workers: int) -> None:
        self.values = {"tx": [f"{workers}*popen"], "maxschedchunk": None}

    def getvalue(self, name: str) -> Any:
        return self.values[name]

    getoption = getvalue


class FakeNode:
    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_demand_order_whole_node_first_then_size_then_collection_order() -> None:
    ids = list(DEMAND)
    assert [ids[i] for i in demand_order(ids, DEMAND.__getitem__)] == ["b", "g", "c", "e", "d", "a", "f", "h"]


def test_scheduler_sends_largest_first_and_keeps_two_per_worker() -> None:
    collection = list(DEMAND)
    scheduler = make_scheduler_class()(FakeConfig(2), None, DEMAND.__getitem__)
    nodes = [FakeNode("gw0"), FakeNode("gw1")]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, collection)
    scheduler.schedule()

    def names(node: FakeNode) -> list[str]:
        return [collection[i] for i in node.sent]

    assert names(nodes[0]) == ["b", "c"] and names(nodes[1]) == ["g", "e"]  # round-robin
    scheduler.mark_test_complete(nodes[1], collection.index("g"))
    assert names(nodes[1]) == ["g", "e", "d"]  # topped up to 2 from the head of the queue
    for _ in range(3):
        for node in nodes:
            if scheduler.node2pending[node]:
                scheduler.mark_test_complete(node, scheduler.node2pending[node][0])
    assert sorted(nodes[0].sent + nodes[1].sent) == list(range(len(collection)))
    assert all(node.shutting_down for node in nodes)


def test_retried_test_goes_back_in_its_size_class() -> None:
    collection = list(DEMAND)
    scheduler = make_scheduler_class()(FakeConfig(1), None, DEMAND.__getitem__)
    node = FakeNode("gw0")
    scheduler.add_node(node)
    scheduler.add_node_collection(node, collection)
    scheduler.schedule()
    scheduler.node2pending[node].clear()
    scheduler.mark_test_pending("b")
    assert [collection[i] for i in node.sent[-2:]] == ["b", "c"]  # sent again ahead of smaller cards


@pytest.mark.parametrize("pool, cpus, workers", [
    (GpuPool(tuple(range(8)), "declared"), 2, 8), (GpuPool((), "none"), 6, 6),
    (GpuPool((), "detected"), None, 1), (GpuPool(tuple(range(200)), "declared"), 2, 64),
])
def test_auto_workers(pool: GpuPool, cpus: int | None, workers: int) -> None:
    assert auto_workers(pool, cpus) == workers


def test_allocation_feed_reads_only_new_complete_lines(tmp_path: Path) -> None:
    feed = AllocationFeed(tmp_path / "gpu-allocations.jsonl")
    assert feed.new_lines() == []
    allocator = GpuAllocator(tmp_path, GpuPool(tuple(range(4)), "declared"))
    allocation = allocator.acquire(2, owner="pkg/models.json::dummy2/model1")
    lines = feed.new_lines()
    assert len(lines) == 1 and "GPUs 0-1 -> dummy2/model1" in lines[0]
    allocation.release()
    with open(tmp_path / "gpu-allocations.jsonl", "a") as events:
        events.write('{"event": "acq')  # a line still being written
    released = feed.new_lines()
    assert len(released) == 1 and "GPUs 0-1 <- dummy2/model1 (held" in released[0]
    assert feed.new_lines() == []


def test_auto_num_workers_sizes_by_the_declared_pool(pytester: pytest.Pytester,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_madengine.xdist import auto_num_workers

    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    for name in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    package = ["--mad-package", str(pytester.path), "--mad-context={'gpu_vendor': 'NONE'}"]
    assert auto_num_workers(pytester.parseconfig(*package, "--mad-gpus", "0-5")) == 6
    assert auto_num_workers(pytester.parseconfig(*package, "--mad-context={'docker_gpus': '2,3'}")) == 2
    assert auto_num_workers(pytester.parseconfig()) is None  # not a MAD run: xdist decides
    assert auto_num_workers(pytester.parseconfig(*package, "--mad-gpus", "x")) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,4,7")
    assert auto_num_workers(pytester.parseconfig(*package)) == 3
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")
    assert auto_num_workers(pytester.parseconfig(*package, "--mad-gpus", "0-5")) is None
