"""The dashboard of a hub-sized history: page size, render time and load time in headless Chromium.

    python bench/dashboard_load.py [--models 100] [--sessions 100] [--tree PATH] [--runs 3]

Fills a history with ``--models`` × ``--sessions`` results (repeats none, durations and CI
labels set, one failure in 41), renders the dashboard in a child process with the
``pytest_madengine`` of ``--tree`` (default this checkout; give an older checkout for a
before/after figure) and loads it ``--runs`` times in headless Chromium. Printed: the page size,
the render time, Chromium's wall time for the page and for an empty page (its start-up), and the
page's own ``data-ready`` mark (milliseconds from navigation start until the script has drawn the
cards in view and wired the filters; absent on pages older than that mark). Targets (issue 24):
≤ 1.5 MB and interactive in ≤ 2 s for 10,000 results.
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_madengine.history.store import HistoryStore  # noqa: E402
from tests.history.test_dashboard_browser import fill_hub  # noqa: E402

RENDER = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
          "from pytest_madengine.history.dashboard import write_dashboard; "
          "from pytest_madengine.history.store import HistoryStore; "
          "from pytest_madengine.results.reference_file import parse_references; "
          "store = HistoryStore(Path(sys.argv[2])); "
          "write_dashboard(store, Path(sys.argv[3]), "
          "references=parse_references({'model_*': {'value': 925, 'tolerance': '5%'}}, 'bench')); store.close()")


def load(browser: str, page: Path) -> tuple[float, int | None]:
    """(wall seconds, the page's data-ready milliseconds or None) of one headless load."""
    started = time.perf_counter()
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, check=True, timeout=300)
    seconds = time.perf_counter() - started
    ready = re.search(r'data-ready="(\d+)"', done.stdout)
    return seconds, int(ready.group(1)) if ready else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to take pytest_madengine from")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        history, page = Path(folder) / "history.sqlite", Path(folder) / "dashboard.html"
        with HistoryStore(history) as store:
            fill_hub(store, args.models, args.sessions)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", RENDER, str(args.tree), str(history), str(page)], check=True)
        render = time.perf_counter() - started
        print(f"dashboard ({args.tree}): {args.models} models × {args.sessions} sessions = "
              f"{args.models * args.sessions:,} results, {page.stat().st_size / 1e6:.2f} MB, "
              f"rendered in {render:.2f} s (child process, start-up included)")
        browser = shutil.which("chromium")
        if not browser:
            print("chromium not installed: no load time")
            return 0
        empty = Path(folder) / "empty.html"
        empty.write_text("<html><body></body></html>")
        bare = statistics.median(load(browser, empty)[0] for _ in range(args.runs))
        loads = [load(browser, page) for _ in range(args.runs)]
        wall = statistics.median(seconds for seconds, _ in loads)
        marks = [ready for _, ready in loads if ready is not None]
        mark = f"; data-ready {statistics.median(marks) / 1000:.2f} s (median)" if marks else ""
        print(f"headless chromium, median of {args.runs}: {wall:.2f} s for the page, {bare:.2f} s for an empty "
              f"page, so {wall - bare:.2f} s for the dashboard{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
