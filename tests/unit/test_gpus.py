"""GPU pool resolution and the cross-process allocator (real processes, real flock)."""
from __future__ import annotations

import json
import multiprocessing
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError, MadSkip
from pytest_madengine.parallel.gpulog import Interval, overlap_conflicts, read_intervals
from pytest_madengine.parallel import gpus
from pytest_madengine.parallel.gpus import (
    GpuAllocator,
    GpuPool,
    format_gpu_list,
    parse_gpu_list,
)

EIGHT = GpuPool(tuple(range(8)), "declared")


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, ids", [
    ("0-3,6", (0, 1, 2, 3, 6)), ("7", (7,)), (" 2 , 0-1 ", (0, 1, 2)), ("3,3,1-2", (1, 2, 3)),
])
def test_parse_gpu_list(text: str, ids: tuple[int, ...]) -> None:
    assert parse_gpu_list(text) == ids
    assert parse_gpu_list(format_gpu_list(ids)) == ids


@pytest.mark.parametrize("text", ["", "a", "0-", "3-1", "1,,2", "-1", "0:3"])
def test_parse_gpu_list_rejects_bad_syntax_naming_option_and_example(text: str) -> None:
    with pytest.raises(MadError) as info:
        parse_gpu_list(text)
    assert "--mad-gpus" in info.value.message and "0-3,6" in info.value.message


def test_format_gpu_list_compresses_runs() -> None:
    assert format_gpu_list((0, 1, 2, 3, 6, 8, 9)) == "0-3,6,8-9"
    assert format_gpu_list(()) == ""


# -- pool resolution ---------------------------------------------------------------------------
def resolve(gpus=None, context=None, env=None, detected=0) -> GpuPool:
    return GpuPool.resolve(gpus_option=gpus, context_gpus=context, env=env or {},
                           detected_count=detected)


def test_none_gives_an_empty_pool_even_with_gpus() -> None:
    assert resolve("none", context="0-3", detected=8) == GpuPool((), "none")


def test_declared_list_is_taken_as_is_without_detection() -> None:
    assert resolve("0-7") == GpuPool(tuple(range(8)), "declared")


def test_declared_list_must_exist_when_gpus_are_detected() -> None:
    assert resolve("2-3", detected=4).ids == (2, 3)
    with pytest.raises(MadError) as info:
        resolve("2-5,9", detected=4)
    assert "4-5,9" in info.value.message and "--mad-gpus" in info.value.message


def test_all_means_detected() -> None:
    assert resolve("all", context="1", env={"CUDA_VISIBLE_DEVICES": "2"}, detected=4) == \
        GpuPool((0, 1, 2, 3), "detected")


def test_option_beats_context_beats_env_beats_detection() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "5,6"}
    assert resolve("1", "2", env, 8) == GpuPool((1,), "declared")
    assert resolve(None, "2-3", env, 8) == GpuPool((2, 3), "context")
    assert resolve(None, None, env, 8) == GpuPool((5, 6), "visible-env")
    assert resolve(None, None, {}, 2) == GpuPool((0, 1), "detected")
    assert resolve(None, "all", env, 2) == GpuPool((0, 1), "detected")


def test_rocr_wins_over_hip_and_cuda_and_narrowing_is_respected() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0", "HIP_VISIBLE_DEVICES": "1", "ROCR_VISIBLE_DEVICES": "4"}
    assert resolve(env=env, detected=8).ids == (4,)
    assert resolve(env={"HIP_VISIBLE_DEVICES": "1,3"}, detected=8).ids == (1, 3)
    assert resolve(env={"CUDA_VISIBLE_DEVICES": ""}, detected=8) == GpuPool((), "visible-env")
    assert resolve(env={"HIP_VISIBLE_DEVICES": "-1"}, detected=8) == GpuPool((), "visible-env")
    with pytest.raises(MadError, match="do not exist"):
        resolve(env={"ROCR_VISIBLE_DEVICES": "9"}, detected=8)


def test_non_numeric_visible_devices_is_a_clear_error() -> None:
    with pytest.raises(MadError) as info:
        resolve(env={"CUDA_VISIBLE_DEVICES": "GPU-3f2a"}, detected=2)
    assert "CUDA_VISIBLE_DEVICES" in info.value.message and "--mad-gpus" in info.value.message


def test_bad_context_list_names_the_context_key() -> None:
    with pytest.raises(MadError, match="docker_gpus"):
        resolve(context="zero")


# -- allocator, one process --------------------------------------------------------------------
def test_acquire_release_and_whole_node(tmp_path: Path) -> None:
    allocator = GpuAllocator(tmp_path, EIGHT)
    with allocator.acquire(2, owner="a") as a, allocator.acquire(4, owner="b") as b:
        assert a.ids == (0, 1) and b.ids == (2, 3, 4, 5)
        assert allocator.held() == {**{i: "a" for i in a.ids}, **{i: "b" for i in b.ids}}
    assert allocator.held() == {}
    whole = allocator.acquire(-1, owner="w")
    assert whole.ids == tuple(range(8))
    whole.release()
    whole.release()  # twice is harmless
    events = [json.loads(line)["event"] for line in (tmp_path / "gpu-allocations.jsonl").open()]
    assert events == ["acquire", "acquire", "release", "release", "acquire", "release"]


def test_too_big_is_skipped_with_reason(tmp_path: Path) -> None:
    with pytest.raises(MadSkip, match=r"needs 9 GPUs, the pool has 8 \(0-7\)"):
        GpuAllocator(tmp_path, EIGHT).acquire(9, owner="big")


def test_empty_pool_and_zero_gpus_return_at_once(tmp_path: Path) -> None:
    held = GpuAllocator(tmp_path, EIGHT).acquire(-1, owner="everything")
    empty = GpuAllocator(tmp_path, GpuPool((), "none")).acquire(8, owner="x", timeout=0)
    zero = GpuAllocator(tmp_path, EIGHT).acquire(0, owner="cpu-only", timeout=0)
    assert empty.ids == () and zero.ids == ()
    held.release()


def test_prefers_a_contiguous_run(tmp_path: Path) -> None:
    allocator = GpuAllocator(tmp_path, EIGHT)
    singles = [allocator.acquire(1, owner=f"s{i}") for i in range(8)]
    for index in (1, 4, 5):
        singles[index].release()
    assert allocator.acquire(2, owner="pair").ids == (4, 5)


def test_timeout_raises_and_leaves_the_queue(tmp_path: Path) -> None:
    allocator = GpuAllocator(tmp_path, EIGHT)
    hog = allocator.acquire(7, owner="hog")
    started = time.monotonic()
    with pytest.raises(MadError, match="waited"):
        allocator.acquire(8, owner="big", timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 20  # gave up, did not wait for the hog
    assert allocator.acquire(1, owner="small", timeout=0.5).ids == (7,)  # not blocked by big
    hog.release()


def _take_in_thread(allocator: GpuAllocator, n: int, name: str, order: list[str],
                    hold_s: float = 0.05) -> threading.Thread:
    def take() -> None:
        with allocator.acquire(n, owner=name):
            order.append(name)
            time.sleep(hold_s)

    thread = threading.Thread(target=take)
    thread.start()
    return thread


def test_small_cards_backfill_until_the_blocked_big_one_reserves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "RESERVE_AFTER_S", 0.5)
    allocator = GpuAllocator(tmp_path, EIGHT)
    hog = allocator.acquire(6, owner="hog")
    order: list[str] = []
    big = _take_in_thread(allocator, -1, "big", order)
    _wait_for_queue(tmp_path, 1)
    early = _take_in_thread(allocator, 1, "early-small", order, hold_s=0.01)
    early.join(5)
    assert order == ["early-small"]  # 2 GPUs idle and "big" cannot start yet: backfill
    time.sleep(0.6)  # "big" has now waited past RESERVE_AFTER_S
    late = _take_in_thread(allocator, 1, "late-small", order)
    _wait_for_queue(tmp_path, 2)
    time.sleep(0.2)
    assert order == ["early-small"]  # "big" reserves: nothing overtakes it any more
    hog.release()
    big.join(5)
    late.join(5)
    assert order == ["early-small", "big", "late-small"]


def test_first_wave_is_gathered_then_served_largest_first(tmp_path: Path) -> None:
    allocator = GpuAllocator(tmp_path, EIGHT, first_wave=4)
    order: list[str] = []
    threads = []
    for n, name in ((1, "one"), (2, "two"), (4, "four")):
        threads.append(_take_in_thread(allocator, n, name, order))
        _wait_for_queue(tmp_path, len(threads))  # arrival order: smallest first
    time.sleep(0.2)
    assert order == []  # the first wave is still gathering
    threads.append(_take_in_thread(allocator, 8, "eight", order))
    for thread in threads:
        thread.join(10)
    assert order[0] == "eight"  # under FIFO "one" would have started first and "eight" waited
    assert sorted(order[1:]) == ["four", "one", "two"]  # all fit together once it is done


def test_gathering_gives_up_after_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpus, "START_GATHER_S", 0.3)
    started = time.monotonic()
    allocation = GpuAllocator(tmp_path, EIGHT, first_wave=8).acquire(1, owner="alone", timeout=5)
    waited = time.monotonic() - started
    assert allocation.ids == (0,)
    assert 0.3 <= waited < 4  # waited for the wave, not for ever
    allocation.release()
    second = GpuAllocator(tmp_path, EIGHT, first_wave=8)
    started = time.monotonic()
    second.acquire(1, owner="later", timeout=5).release()
    assert time.monotonic() - started < 0.3  # the session has started: no more gathering


# -- allocator, many processes -----------------------------------------------------------------
def _wait_for_queue(session_dir: Path, length: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if len(json.loads((session_dir / "gpus.json").read_text())["queue"]) == length:
                return
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.01)
    raise AssertionError(f"queue never reached {length}")


def _child(session_dir: str, n: int, then: str) -> None:
    """Runs in a separate interpreter: acquire n GPUs, then hold them or wait forever."""
    allocation = GpuAllocator(Path(session_dir), EIGHT).acquire(n, owner=f"child-{then}")
    print(json.dumps(list(allocation.ids)), flush=True)
    time.sleep(60)


def _spawn(tmp_path: Path, n: int, then: str) -> subprocess.Popen[str]:
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_gpus; test_gpus._child({str(tmp_path)!r}, {n}, {then!r})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_killed_holder_is_reclaimed(tmp_path: Path) -> None:
    child = _spawn(tmp_path, 8, "hold")
    assert json.loads(child.stdout.readline()) == list(range(8))  # type: ignore[union-attr]
    child.kill()
    child.wait()
    allocator = GpuAllocator(tmp_path, EIGHT)
    with allocator.acquire(-1, owner="after", timeout=2) as allocation:
        assert allocation.ids == tuple(range(8))
    events = [json.loads(line) for line in (tmp_path / "gpu-allocations.jsonl").open()]
    assert [e["event"] for e in events].count("reclaim") == 1
    assert overlap_conflicts(read_intervals(tmp_path / "gpu-allocations.jsonl"), 8) == []


def test_reclaim_runs_the_cleanup_before_giving_the_gpus_out(tmp_path: Path) -> None:
    child = _spawn(tmp_path, 3, "hold")
    assert json.loads(child.stdout.readline()) == [0, 1, 2]  # type: ignore[union-attr]
    child.kill()
    child.wait()
    cleaned: list[tuple[int, list[int]]] = []

    def cleanup(hold: dict) -> None:
        cleaned.append((hold["pid"], hold["ids"]))
        raise RuntimeError("docker daemon gone")  # a failing cleanup must not wedge the pool

    allocator = GpuAllocator(tmp_path, EIGHT, on_reclaim=cleanup)
    assert allocator.acquire(8, owner="after", timeout=2).ids == tuple(range(8))
    assert cleaned == [(child.pid, [0, 1, 2])]
    reclaim = [json.loads(line) for line in (tmp_path / "gpu-allocations.jsonl").open()
               if '"reclaim"' in line]
    assert reclaim[0]["cleanup_error"] == "RuntimeError: docker daemon gone"


def test_killed_waiter_does_not_block_the_queue(tmp_path: Path) -> None:
    allocator = GpuAllocator(tmp_path, EIGHT)
    hog = allocator.acquire(4, owner="hog")
    waiter = _spawn(tmp_path, 8, "wait")
    _wait_for_queue(tmp_path, 1)
    waiter.kill()
    waiter.wait()
    assert allocator.acquire(2, owner="behind", timeout=2).ids == (4, 5)
    hog.release()


def test_ctrl_c_while_waiting_leaves_the_queue(tmp_path: Path) -> None:
    allocator = GpuAllocator(tmp_path, EIGHT)
    hog = allocator.acquire(8, owner="hog")
    waiter = _spawn(tmp_path, 2, "wait")
    _wait_for_queue(tmp_path, 1)
    waiter.send_signal(signal.SIGINT)
    waiter.wait(10)
    state = json.loads((tmp_path / "gpus.json").read_text())
    assert state["queue"] == []  # removed by the waiter itself, not by the reaper
    events = [json.loads(line)["event"] for line in (tmp_path / "gpu-allocations.jsonl").open()]
    assert events[-1] == "abandon"
    hog.release()


def _hammer(session_dir: str, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    allocator = GpuAllocator(Path(session_dir), EIGHT)

    def worker(index: int) -> None:
        for _ in range(rounds):
            n = rng.choice([1, 1, 2, 4, -1])
            with allocator.acquire(n, owner=f"p{seed}-t{index}", timeout=60):
                time.sleep(rng.uniform(0, 0.01))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_processes_and_threads_hammering_never_share_a_gpu(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_hammer, args=(str(tmp_path), seed, 12)) for seed in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    intervals = read_intervals(tmp_path / "gpu-allocations.jsonl")
    assert len(intervals) == 4 * 3 * 12
    assert all(interval.end < float("inf") for interval in intervals)
    assert overlap_conflicts(intervals, 8) == []
    assert GpuAllocator(tmp_path, EIGHT).held() == {}


def test_overlap_conflicts_detects_sharing_and_whole_node(tmp_path: Path) -> None:
    a = Interval(0, "a", (0, 1), 0.0, 2.0)
    assert overlap_conflicts([a, Interval(1, "b", (1,), 1.0, 3.0)], 8)
    assert overlap_conflicts([a, Interval(1, "b", (2,), 2.0, 3.0)], 8) == []
    assert overlap_conflicts([Interval(0, "w", (0, 1), 0.0, 2.0), Interval(1, "b", (3,), 1, 3)], 2)
