"""``report to-html`` / ``to-email`` on a large perf.csv: time, peak memory and page size (issue 23.6).

    python bench/report_size.py [--rows 100000] [--models 200] [--tree PATH]

Writes a perf.csv with all 29 madengine columns (``--models`` models, one row each per day), then
runs each report in a fresh child process (``--tree``: the checkout whose ``pytest_madengine`` is
used, default this one) and prints its wall time, the child's peak resident memory
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) and the page's size; with chromium installed,
also how long headless Chromium takes to load the page (an empty page's time given for scale).
"""
from __future__ import annotations

import argparse
import csv
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_madengine.results.sinks.perfcsv import COLUMNS  # noqa: E402

RUN = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
       "from pytest_madengine.reports.html import write_html, write_email; "
       "write_html(Path(sys.argv[2])) if sys.argv[3] == 'html' else write_email(Path(sys.argv[2]).parent)")


def write_csv(path: Path, rows: int, models: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for number in range(rows):
            day, index = divmod(number, models)
            writer.writerow(dict.fromkeys(COLUMNS, "") | {
                "model": f"pyt_model_{index:03d}", "n_gpus": "8", "nnodes": "1", "gpus_per_node": "8",
                "training_precision": "fp16", "pipeline": "nightly", "args": "--batch-size 8 --seq-len 2048",
                "tags": "pyt,inference", "docker_file": "docker/pyt_model.ubuntu.amd.Dockerfile",
                "base_docker": "rocm/pytorch:latest", "docker_sha": "sha256:" + "ab" * 32,
                "docker_image": f"ci-pyt_model_{index:03d}", "git_commit": f"{day:040x}", "machine_name": "node-a",
                "gpu_architecture": "gfx942", "performance": f"{900 + (number * 7) % 50:.2f}",
                "metric": "tokens/s", "status": "FAILURE" if number % 97 == 0 else "SUCCESS",
                "build_duration": "12.5", "test_duration": f"{30 + day % 5}", "build_number": str(day)})


def measure(tree: Path, csv_path: Path, kind: str) -> tuple[float, float]:
    """(seconds, peak MB) of one report run in a child process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, str(tree), str(csv_path), kind], check=True, timeout=3600)
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the only child so far


def browse(browser: str, page: Path, limit: float = 120.0) -> str:
    """How long headless Chromium takes to load ``page`` and dump its DOM (start-up included)."""
    started = time.perf_counter()
    try:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000",
                        "--dump-dom", page.as_uri()], capture_output=True, check=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return f"not loaded in {limit:.0f} s"
    return f"{time.perf_counter() - started:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to take pytest_madengine from")
    parser.add_argument("--kind", choices=("html", "email"), default="html")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "perf.csv"
        write_csv(csv_path, args.rows, args.models)
        print(f"perf.csv: {args.rows:,} rows, {csv_path.stat().st_size / 1e6:.1f} MB ({args.tree})")
        seconds, peak = measure(args.tree, csv_path, args.kind)
        page = csv_path.with_suffix(".html") if args.kind == "html" else csv_path.parent / "run_results.html"
        size = page.stat().st_size / 1e6
        print(f"report {args.kind}: {seconds:.2f} s, peak memory {peak:.0f} MB, page {size:.2f} MB")
        browser = shutil.which("chromium")
        if browser:
            empty = Path(folder) / "empty.html"
            empty.write_text("<html><body></body></html>")
            bare, loaded = browse(browser, empty), browse(browser, page)
            print(f"headless chromium: loaded in {loaded} (an empty page {bare})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
