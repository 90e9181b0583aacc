"""The physical floor of GPU packing on this host: the same cards as bare Docker SDK containers.

``bench/parallel.py --floor`` compares the plugin's makespan with this: ``workers`` threads in one
process, each taking the largest waiting card that fits into the free GPUs (a perfect in-process
scheduler: no worker start-up, no pytest, no inter-process lock, no result files) and running it as
a container exactly as a model's container is run (created and started while its GPUs are held,
host network, removed in the background after it exits). What this takes over ``ceil(GPU-seconds
/ pool)`` is what container start-up and exit cost on this machine when that many start at once;
a pytest session cannot go below it without starting containers before their GPUs are known
(which would give every container every device).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

IMAGE = "mad-test/busybox:latest"


@dataclass
class _Pool:
    free: int
    waiting: list[int]  # GPUs per card, largest first
    cond: threading.Condition = field(default_factory=threading.Condition)
    grants: list[float] = field(default_factory=list)
    releases: list[float] = field(default_factory=list)
    holds: list[float] = field(default_factory=list)

    def take(self) -> tuple[int, float] | None:
        """(GPUs, grant time) of the largest waiting card that fits (blocks until one does); None
        when none is left."""
        with self.cond:
            while True:
                if not self.waiting:
                    return None
                fitting = next((size for size in self.waiting if size <= self.free), None)
                if fitting is not None:
                    self.waiting.remove(fitting)
                    self.free -= fitting
                    self.grants.append(time.monotonic())
                    return fitting, self.grants[-1]
                self.cond.wait()

    def give_back(self, size: int, granted: float) -> None:
        with self.cond:
            now = time.monotonic()
            self.free += size
            self.releases.append(now)
            self.holds.append(now - granted)
            self.cond.notify_all()


@dataclass(frozen=True)
class Floor:
    makespan_s: float
    median_hold_s: float


def floor_makespan(sizes: list[int], pool: int, workers: int, sleep: float) -> Floor:
    """Run ``sizes`` (GPUs per card) as ``sleep``-second containers on ``pool`` GPUs, ``workers`` at once."""
    import statistics

    import docker

    client = docker.from_env()
    state = _Pool(free=pool, waiting=sorted(sizes, reverse=True))
    removers: list[threading.Thread] = []

    def worker() -> None:
        while (taken := state.take()) is not None:
            size, granted = taken
            container = client.containers.create(IMAGE, ["sleep", f"{sleep:g}"], network_mode="host")
            container.start()
            container.wait()
            state.give_back(size, granted)
            remover = threading.Thread(target=container.remove, kwargs={"force": True})
            remover.start()
            removers.append(remover)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads + removers:
        thread.join()
    return Floor(makespan_s=round(max(state.releases) - min(state.grants), 2),
                 median_hold_s=round(statistics.median(state.holds), 2))
