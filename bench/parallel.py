"""GPU packing benchmark: cards sleeping S seconds in containers on a declared pool.

    python bench/parallel.py                   # 16 one-GPU cards x 2 s, --mad-gpus 0-7, -n 8 and -n 0
    python bench/parallel.py --cards 32 --workers 8 --no-serial
    python bench/parallel.py --sizes 8,4x2,2x4,1x8 --no-serial     # mixed sizes (ideal 8 s)
    python bench/parallel.py --sizes 8,4x2,2x4,1x8 --no-serial --baseline main --rounds 3
                                               # side by side with another revision, interleaved
    python bench/parallel.py --no-serial --floor --rounds 3
                                               # and against bare Docker SDK containers (docker_floor.py)

Runs real pytest sessions (real xdist workers, real containers from mad-test/busybox:latest,
gpu_vendor NONE so no device flags) and reads the allocator's record of every grant/release:

- makespan: first GPU grant to last release (the models' phase; the ideal is
  ceil(cards / gpus) x sleep); the pytest wall clock (worker start-up, collection) is reported too;
- GPU utilisation: GPU-seconds held / (pool size x makespan); "busy" counts only the sleep.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.docker_floor import Floor, floor_makespan  # noqa: E402
from bench.trees import baseline_tree  # noqa: E402
from pytest_madengine.parallel.gpulog import overlap_conflicts, peak_concurrency, read_intervals

# A conftest that copies the controller's allocation record out of the session dir before the
# session removes it (used by this bench and tests/acceptance/test_parallel.py).
RECORD_CONFTEST = '''
import shutil
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_unconfigure(config):
    from pytest_madengine.session import SESSION_KEY

    session = config.stash.get(SESSION_KEY, None)
    if session is None or hasattr(config, "workerinput"):
        return
    out = Path(__file__).parent / "gpu-record"
    out.mkdir(exist_ok=True)
    (out / "session_id").write_text(session.session_id)
    for name in ("gpu-allocations.jsonl", "gpus.json"):
        if (session.session_dir / name).exists():
            shutil.copy(session.session_dir / name, out / name)
'''

DOCKERFILE = ("# CONTEXT {'gpu_vendor': 'NONE'}\n"
              "ARG BASE_DOCKER=mad-test/busybox:latest\nFROM $BASE_DOCKER\n")


def write_package(root: Path, n_gpus: list[int], script: str) -> Path:
    """A MAD package of one card per entry of ``n_gpus`` (m00, m01, ...) sharing one script,
    plus the record conftest at ``root`` (the pytest rootdir); returns the package dir."""
    package = root / "pkg"
    (package / "docker").mkdir(parents=True)
    (package / "scripts" / "m").mkdir(parents=True)
    (package / "docker" / "tiny.none.Dockerfile").write_text(DOCKERFILE)
    (package / "scripts" / "m" / "run.sh").write_text(script)
    cards = [{"name": f"m{i:02d}", "dockerfile": "docker/tiny", "scripts": "scripts/m/run.sh",
              "n_gpus": str(n), "owner": "", "training_precision": "", "tags": ["bench"], "args": ""}
             for i, n in enumerate(n_gpus)]
    (package / "models.json").write_text(json.dumps(cards, indent=1))
    (root / "conftest.py").write_text(RECORD_CONFTEST)
    return package


@dataclass
class Measurement:
    workers: int
    cards: int
    wall_s: float
    makespan_s: float
    ideal_s: float
    ratio: float
    gpu_utilisation: float
    busy_utilisation: float
    peak_concurrency: int
    conflicts: int
    exit_code: int
    median_hold_s: float  # sleep + container start/stop while the GPU is held
    start_spread_s: float  # first to last grant of the first wave (worker start-up skew)
    median_gap_s: float  # a worker's release to its next grant (teardown + setup)
    from_request_s: float  # first GPU request (not grant) to last release: gathering included


def run_session(root: Path, package: Path, workers: int, pool: int, sleep: float,
                code: Path = REPO) -> Measurement:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--mad-package", str(package),
            "--mad-tags", "all", "--mad-gpus", f"0-{pool - 1}", "--mad-context={'gpu_vendor': 'NONE'}",
            "-n", str(workers), "--mad-history", "none"]  # two trees may differ in history schema
    record = root / "gpu-record"
    if record.exists():
        for path in record.iterdir():
            path.unlink()
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.monotonic()
    proc = subprocess.run(args, check=False, cwd=root, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
    intervals = read_intervals(record / "gpu-allocations.jsonl")
    first, last = min(i.start for i in intervals), max(i.end for i in intervals)
    makespan = last - first
    held = sum((i.end - i.start) * len(i.ids) for i in intervals)
    ideal = max(math.ceil(sum(len(i.ids) for i in intervals) / pool), 1) * sleep
    return Measurement(
        workers=workers, cards=len(intervals), wall_s=round(wall, 2), makespan_s=round(makespan, 2),
        ideal_s=ideal, ratio=round(makespan / ideal, 3),
        gpu_utilisation=round(held / (pool * makespan), 3),
        busy_utilisation=round(len(intervals) * sleep / (pool * makespan), 3),
        peak_concurrency=peak_concurrency(intervals), conflicts=len(overlap_conflicts(intervals, pool)),
        exit_code=proc.returncode, **_breakdown(record / "gpu-allocations.jsonl", pool))


def _breakdown(events_path: Path, pool: int) -> dict[str, float]:
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    grants = sorted(e["t"] for e in events if e["event"] == "acquire")
    holds = [e["held_for"] for e in events if e["event"] == "release"]
    gaps = []
    for worker in {e["worker"] for e in events}:
        mine = sorted((e["t"], e["event"]) for e in events if e["worker"] == worker)
        gaps += [b[0] - a[0] for a, b in itertools.pairwise(mine) if (a[1], b[1]) == ("release", "acquire")]
    first_wave = grants[:pool]
    requested = min(e["t"] - e.get("waited", 0.0) for e in events if e["event"] == "acquire")
    ends = max(e["t"] for e in events if e["event"] in ("release", "reclaim"))
    return {"from_request_s": round(ends - requested, 2), "median_hold_s": round(statistics.median(holds), 2),
            "start_spread_s": round(first_wave[-1] - first_wave[0], 2),
            "median_gap_s": round(statistics.median(gaps), 2) if gaps else 0.0}


def parse_sizes(text: str) -> list[int]:
    """``"8,4x2,2x4,1x8"`` → one 8, two 4s, four 2s, eight 1s (GPUs per card)."""
    sizes: list[int] = []
    for part in text.split(","):
        size, _, count = part.strip().partition("x")
        sizes += [int(size)] * int(count or 1)
    return sizes




def print_table(title: str, results: list[Measurement], sleep: float) -> None:
    print(title)
    print(f"{'-n':>4} {'wall s':>7} {'makespan s':>11} {'from request':>13} {'ideal s':>8} {'ratio':>6} "
          f"{'GPU util':>9} {'busy util':>10} {'peak':>5} {'conflicts':>10}")
    for m in results:
        print(f"{m.workers:>4} {m.wall_s:>7} {m.makespan_s:>11} {m.from_request_s:>13} {m.ideal_s:>8} {m.ratio:>6} "
              f"{m.gpu_utilisation:>9} {m.busy_utilisation:>10} {m.peak_concurrency:>5} {m.conflicts:>10}")
    for m in results:
        if m.workers == 0:
            continue  # one at a time: no waves to compare
        print(f"-n {m.workers}: median hold {m.median_hold_s} s (sleep {sleep:g} s + container), "
              f"first-wave start spread {m.start_spread_s} s, median release->next grant {m.median_gap_s} s")


def print_floor(floors: list[Floor], results: dict[str, list[Measurement]], sleep: float, sizes: list[int],
                pool: int) -> None:
    ideal = max(math.ceil(sum(sizes) / pool), 1) * sleep
    print("--- bare Docker SDK floor (same cards, largest first, containers started inside the hold)")
    for floor in floors:
        print(f"makespan {floor.makespan_s} s ({floor.makespan_s / ideal:.3f}x the ideal {ideal:g} s), "
              f"median hold {floor.median_hold_s} s")
    floor_median = statistics.median(f.makespan_s for f in floors)
    for name, measured in results.items():
        spans = [m.makespan_s for m in measured if m.workers]
        if spans:
            print(f"{name}: median makespan / floor = {statistics.median(spans) / floor_median:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=16, help="one-GPU cards (ignored with --sizes)")
    parser.add_argument("--sizes", type=parse_sizes, help="GPUs per card, e.g. 8,4x2,2x4,1x8")
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--no-serial", action="store_true", help="skip the -n 0 comparison")
    parser.add_argument("--baseline", metavar="REV", help="also run git revision REV, interleaved")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each configuration")
    parser.add_argument("--floor", action="store_true",
                        help="also run the same cards as bare Docker SDK containers (bench/docker_floor.py), "
                             "interleaved, and report makespan / floor")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    options = parser.parse_args(argv)
    sizes = options.sizes or [1] * options.cards
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        root = Path(tmp)
        script = f'sleep {options.sleep}\necho "performance: 1 ops"\n'
        package = write_package(root, sizes, script)
        codes = {"this tree": REPO}
        if options.baseline:
            codes[options.baseline] = baseline_tree(options.baseline, root / "baseline")
        runs = [options.workers] + ([] if options.no_serial else [0])
        results: dict[str, list[Measurement]] = {name: [] for name in codes}
        floors: list[Floor] = []
        for _ in range(options.rounds):
            if options.floor:
                floors.append(floor_makespan(sizes, options.gpus, options.workers, options.sleep))
            for workers in runs:
                for name, code in codes.items():
                    results[name].append(run_session(root, package, workers, options.gpus, options.sleep, code))
    print(f"{len(sizes)} cards ({','.join(map(str, sizes))} GPUs) x {options.sleep:g} s on {options.gpus} "
          f"declared GPUs (cpus here: {os.cpu_count()})")
    for name, measured in results.items():
        print_table(f"--- {name}", measured, options.sleep)
    if floors:
        print_floor(floors, results, options.sleep, sizes, options.gpus)
    if options.baseline:
        ours, theirs = (statistics.median(m.ratio for m in results[name] if m.workers) for name in codes)
        print(f"median makespan/ideal: this tree {ours}, {options.baseline} {theirs} ({ours / theirs:.2f}x)")
    if options.json:
        options.json.write_text(json.dumps({name: [asdict(m) for m in ms] for name, ms in results.items()}, indent=2))
    return 0 if all(m.exit_code == 0 and m.conflicts == 0 for ms in results.values() for m in ms) else 1


if __name__ == "__main__":
    sys.exit(main())
