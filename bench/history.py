"""History benchmarks: the cost of writing one result, and of rendering the dashboard for 10,000 rows.

    python bench/history.py [--results 10000] [--models 100]

Targets (issue 15): under 5 ms per written result; the dashboard for 10,000 results in under
2 s (file generation; with chromium installed, also the time headless Chromium takes to load
the page and draw the charts in view, for information).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_madengine.history.dashboard import write_dashboard  # noqa: E402
from pytest_madengine.history.store import HistoryStore, SessionInfo  # noqa: E402
from pytest_madengine.records import SUCCESS, ModelResult  # noqa: E402
from pytest_madengine.results.reference_file import parse_references  # noqa: E402
from pytest_madengine.results.sinks.perfcsv import COLUMNS  # noqa: E402


def make_result(model: str, value: float) -> ModelResult:
    row = dict.fromkeys(COLUMNS, "")
    row.update(model=model, performance=f"{value:.1f}", metric="tokens/s", gpu_architecture="gfx942", n_gpus="8",
               nnodes="1", status=SUCCESS, docker_sha="sha256:" + "ab" * 32, args="--bs 8 --seq 2048")
    return ModelResult(model=model, status=SUCCESS, performance=row["performance"], metric="tokens/s", rows=[row])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=100)
    args = parser.parse_args()
    sessions = max(1, args.results // args.models)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.sqlite"
        per_result: list[float] = []
        with HistoryStore(path) as store:
            for number in range(sessions):
                session_id = f"s{number:05d}"
                store.begin_session(SessionInfo(id=session_id, started=1_700_000_000 + number * 3600.0))
                for index in range(args.models):
                    result = make_result(f"model_{index:04d}", 900 + (number * 7 + index) % 50)
                    started = time.perf_counter()
                    store.add_result(session_id, result)
                    per_result.append(time.perf_counter() - started)
                store.end_session(session_id, 1_700_000_000 + number * 3600.0 + 60)
            median_ms = statistics.median(per_result) * 1000
            mean_ms = statistics.fmean(per_result) * 1000
            p99_ms = sorted(per_result)[int(len(per_result) * 0.99)] * 1000
            print(f"history writes: {len(per_result)} results, mean {mean_ms:.2f} ms, median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms "
                  f"per result (target < 5 ms)")
            references = parse_references({"model_*": {"value": 925, "tolerance": "5%"}}, "bench")
            page = Path(folder) / "dashboard.html"
            started = time.perf_counter()
            write_dashboard(store, page, references=references)
            render = time.perf_counter() - started
            print(f"dashboard: {len(per_result)} results, {args.models} charts × {sessions} sessions, "
                  f"{page.stat().st_size / 1e6:.1f} MB written in {render:.2f} s (target < 2 s)")
        browser = shutil.which("chromium")
        if browser:
            empty = Path(folder) / "empty.html"
            empty.write_text("<html><body></body></html>")
            bare, loaded = (_browse(browser, target) for target in (empty, page))
            print(f"headless chromium: dashboard loaded and charts in view drawn in {loaded:.2f} s "
                  f"(an empty page: {bare:.2f} s, so {loaded - bare:.2f} s for the dashboard)")
    return 0


def _browse(browser: str, page: Path) -> float:
    """Seconds headless Chromium takes to load ``page`` and dump its DOM (start-up included)."""
    started = time.perf_counter()
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                    "--dump-dom", page.as_uri()], capture_output=True, check=True, timeout=300)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
