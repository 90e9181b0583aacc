"""Cost of one result in perf_super.json/.csv as the file grows (issue 22.4).

    python bench/perf_super.py                         # this tree, 0 / 1,000 / 10,000 earlier records
    python bench/perf_super.py --baseline main         # the same in git revision REV, side by side

Seeds perf_super.json (and .csv) with N earlier records of the shape a result writes, then times
``PerfSuperSink.record`` for a few results in a child interpreter per code tree, so each tree
imports its own package. Prints the median milliseconds per result for each N.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.trees import baseline_tree  # noqa: E402

CHILD = r'''
import json, os, statistics, sys, time
from pathlib import Path
from pytest_madengine.records import ModelResult
from pytest_madengine.results.sinks.superset import PerfSuperSink, super_records, to_csv

out, earlier, results = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
record = super_records(ModelResult(model="seed", status="SUCCESS", performance="1.5", metric="ops"))[0]
seed = [dict(record, model=f"seed{i}") for i in range(earlier)]
(out / "perf_super.json").write_text(json.dumps(seed, indent=2) + "\n")
(out / "perf_super.csv").write_text(to_csv(seed) if seed else "")
os.sync()  # the seed's dirty pages must not be flushed by the first timed fsync
sink = PerfSuperSink(out)
times = []
for i in range(results):
    result = ModelResult(model=f"m{i}", status="SUCCESS", performance=str(i), metric="ops")
    started = time.perf_counter()
    sink.record(result)
    times.append((time.perf_counter() - started) * 1000)
assert len(json.loads((out / "perf_super.json").read_text())) == earlier + results
print(json.dumps({"median_ms": statistics.median(times)}))
'''


def measure(code: Path, earlier: int, results: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-super-") as out:
        proc = subprocess.run([sys.executable, "-c", CHILD, out, str(earlier), str(results)], check=True,
                              capture_output=True, text=True, cwd=out,
                              env={**os.environ, "PYTHONPATH": str(code)})
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["median_ms"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,1000,10000", help="earlier records, comma-separated")
    parser.add_argument("--results", type=int, default=20, help="results timed per size")
    parser.add_argument("--baseline", metavar="REV", help="also measure git revision REV")
    options = parser.parse_args(argv)
    sizes = [int(size) for size in options.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-super-code-") as tmp:
        codes = {"this tree": REPO}
        if options.baseline:
            codes[options.baseline] = baseline_tree(options.baseline, Path(tmp) / "baseline")
        print(f"{'earlier records':>16} " + " ".join(f"{name + ' ms':>14}" for name in codes))
        for size in sizes:
            row = [measure(code, size, options.results) for code in codes.values()]
            print(f"{size:>16} " + " ".join(f"{ms:>14.2f}" for ms in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
