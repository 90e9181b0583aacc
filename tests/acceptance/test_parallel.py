"""GPU-aware parallel runs: real xdist sessions running real containers on a declared 8-GPU pool."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.parallel import write_package
from pytest_madengine.parallel.gpulog import Interval, overlap_conflicts, peak_concurrency, read_intervals

pytestmark = pytest.mark.docker

NONE_VENDOR = "--mad-context={'gpu_vendor': 'NONE'}"
MIX = (1, 2, 4, -1)


def make_package(pytester: pytest.Pytester, n_gpus: list[int], script: str) -> Path:
    return write_package(pytester.path, n_gpus, script)


def mad_args(package: Path, *extra: str) -> list[str]:
    return ["--mad-package", str(package), "--mad-tags", "all", "--mad-gpus", "0-7", NONE_VENDOR,
            "-p", "no:cacheprovider", *extra]


def record(pytester: pytest.Pytester) -> tuple[list[Interval], dict, list[dict]]:
    out = pytester.path / "gpu-record"
    events = [json.loads(line) for line in (out / "gpu-allocations.jsonl").read_text().splitlines()]
    return read_intervals(out / "gpu-allocations.jsonl"), json.loads((out / "gpus.json").read_text()), events


def test_forty_cards_on_eight_gpus_never_share_a_gpu(pytester: pytest.Pytester, busybox_image: str) -> None:
    n_gpus = [MIX[i % 4] for i in range(40)]
    package = make_package(pytester, n_gpus, 'sleep 0.3\necho "performance: 1 ops"\n')
    result = pytester.runpytest_subprocess(*mad_args(package, "-n", "4", "-v"), timeout=600)
    result.assert_outcomes(passed=40)
    result.stdout.fnmatch_lines(["*GPUs 0-7 -> m*", "*GPUs * <- m*"])  # the live allocation feed

    intervals, state, events = record(pytester)
    assert len(intervals) == 40 and all(i.end < float("inf") for i in intervals)
    assert overlap_conflicts(intervals, 8) == []
    wanted = {f"m{i:02d}": 8 if n < 0 else n for i, n in enumerate(n_gpus)}
    assert {i.owner.rsplit("::", 1)[-1]: len(i.ids) for i in intervals} == wanted
    for whole in (i for i in intervals if len(i.ids) == 8):  # whole-node cards ran alone
        assert not [o for o in intervals if o is not whole and o.start < whole.end and whole.start < o.end]
    assert peak_concurrency(intervals) >= 3  # it did run side by side
    assert len({e["worker"] for e in events}) == 4
    # largest first: the first grant is a whole-node card; whole-node cards start before 1-GPU ones
    order = [i.owner.rsplit("::", 1)[-1] for i in sorted(intervals, key=lambda i: i.start)]
    assert wanted[order[0]] == 8
    rank = {name: position for position, name in enumerate(order)}

    def mean(size: int) -> float:
        return sum(rank[name] for name, n in wanted.items() if n == size) / 10

    assert mean(8) < mean(4) < mean(1)
    assert state["holds"] == [] and state["queue"] == []
    assert _running_containers((pytester.path / "gpu-record" / "session_id").read_text()) == []


def test_card_larger_than_pool_is_skipped_with_reason(pytester: pytest.Pytester, busybox_image: str) -> None:
    package = make_package(pytester, [16, 1], 'echo "performance: 1 ops"\n')
    result = pytester.runpytest_subprocess(*mad_args(package, "-n", "2", "-rs"), timeout=300)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs 16 GPUs, the pool has 8 (0-7)*"])


def _start(pytester: pytest.Pytester, package: Path, workers: str) -> tuple[subprocess.Popen, Path]:
    tmp = pytester.path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *mad_args(package, "-n", workers)],
                            cwd=pytester.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    return proc, tmp


def _wait_for_grants(tmp: Path, count: int, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in tmp.glob("pytest-madengine-*/gpu-allocations.jsonl"):
            grants = [json.loads(line) for line in path.read_text().splitlines()
                      if '"acquire"' in line]
            if len(grants) >= count:
                return grants
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} GPU grants within {timeout} s")


def _running_containers(session_id: str) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=pytest-madengine.session={session_id}"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_killed_worker_leaves_no_gpu_held_and_no_container(pytester: pytest.Pytester, busybox_image: str) -> None:
    package = make_package(pytester, [4, 4, 4, 4], 'sleep 3\necho "performance: 1 ops"\n')
    proc, tmp = _start(pytester, package, "2")
    victim = _wait_for_grants(tmp, 2)[0]
    time.sleep(1.0)  # let its container start
    os.kill(victim["pid"], signal.SIGKILL)
    output, _ = proc.communicate(timeout=300)
    assert "crashed" in output, output
    assert "3 passed" in output and "1 failed" in output, output
    intervals, state, events = record(pytester)
    assert state["holds"] == [] and state["queue"] == []
    assert [e["pid"] for e in events if e["event"] == "reclaim"] == [victim["pid"]]
    assert overlap_conflicts(intervals, 8) == []
    assert _running_containers((pytester.path / "gpu-record" / "session_id").read_text()) == []


def test_ctrl_c_leaves_no_gpu_held_and_no_container(pytester: pytest.Pytester, busybox_image: str) -> None:
    package = make_package(pytester, [2, 2, 2, 2, 2, 2], 'sleep 20\necho "performance: 1 ops"\n')
    proc, tmp = _start(pytester, package, "3")
    _wait_for_grants(tmp, 3)
    time.sleep(1.5)  # containers running
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, output
    _, state, _ = record(pytester)
    assert state["holds"] == [] and state["queue"] == [], output
    assert _running_containers((pytester.path / "gpu-record" / "session_id").read_text()) == []
