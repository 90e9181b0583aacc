"""Collection cost of a large MAD package: plain pytest vs pytest-madengine, and the loader alone.

    python bench/collect.py [--cards 2000] [--dirs 40] [--repeat 5]

Writes a synthetic package (``--cards`` cards over ``--dirs`` scripts/<dir>/models.json, shaped
like the MAD hub's vLLM cards) into a temp dir, then reports the best of ``--repeat`` wall times of
(a) ``pytest --collect-only -q -p no:cacheprovider`` in an empty dir and
(b) ``pytest --mad-package PKG --mad-tags all --collect-only -q -p no:cacheprovider`` there,
and of ``load_package`` + ``select(all)`` called in this process. See bench/COLLECT.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DOCKERFILE = """# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}
ARG BASE_DOCKER=mad-test/busybox:latest
FROM $BASE_DOCKER
"""


def synthetic_card(family: int, index: int) -> dict[str, object]:
    return {
        "name": f"pyt_fam{family:02d}_model-{index}.{family}b",
        "dockerfile": f"../../docker/fam{family:02d}",
        "scripts": "run.sh",
        "url": "",
        "data": "huggingface",
        "n_gpus": str(1 + index % 8),
        "owner": "bench@example.com",
        "training_precision": "",
        "multiple_results": "",
        "tags": ["pyt", f"fam{family:02d}", "inference" if index % 3 else "training"],
        "timeout": -1,
        "args": f"--model_repo org/model-{index} --config configs/default.yaml",
        "env_vars": {"BENCH": str(index)},
    }


def write_synthetic_package(dest: Path, cards: int = 2000, dirs: int = 40) -> Path:
    """A MAD package of ``cards`` cards spread evenly over ``dirs`` per-dir registries."""
    (dest / "docker").mkdir(parents=True, exist_ok=True)
    (dest / "models.json").write_text("[]")
    per_dir, extra = divmod(cards, dirs)
    for family in range(dirs):
        count = per_dir + (1 if family < extra else 0)
        folder = dest / "scripts" / f"fam{family:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "models.json").write_text(
            json.dumps([synthetic_card(family, i) for i in range(count)], indent=4))
        (folder / "run.sh").write_text('#!/bin/sh\necho "performance: 1.0 samples_per_second"\n')
        (dest / "docker" / f"fam{family:02d}.ubuntu.amd.Dockerfile").write_text(DOCKERFILE)
    return dest


def best_of(repeat: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def pytest_run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # Bytecode caching on, as on a user's machine: without it pytest re-rewrites the asserts of
    # every plugin module (pytest_madengine's included) on each start.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.run([sys.executable, "-m", "pytest", *argv], cwd=cwd, text=True, env=env,
                          capture_output=True, check=False)


def load_and_select(package: Path) -> int:
    from pytest_madengine.discovery import load_package
    from pytest_madengine.selection import select

    return len(select(load_package(package, context={}).cards, ["all"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--dirs", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mad-bench-") as temp:
        package = write_synthetic_package(Path(temp) / "pkg", options.cards, options.dirs)
        empty = Path(temp) / "empty"
        empty.mkdir()
        selected = load_and_select(package)
        direct = best_of(max(options.repeat, 20), lambda: load_and_select(package))
        print(f"package: {options.cards} cards in {options.dirs} dirs; selected with 'all': {selected}")
        print(f"load_package + select(all), in process:  {direct * 1000:8.1f} ms")
        bare_argv = ["--collect-only", "-q", "-p", "no:cacheprovider"]
        mad_argv = [*bare_argv, "--mad-package", str(package), "--mad-tags", "all"]
        bare = best_of(options.repeat, lambda: pytest_run(bare_argv, empty))
        print(f"(a) pytest --collect-only, empty dir:     {bare * 1000:8.1f} ms")
        check = pytest_run(mad_argv, empty)
        items = sum(1 for line in check.stdout.splitlines() if "::" in line or "[" in line)
        if check.returncode != 0:
            print(f"(b) skipped: pytest exited {check.returncode} (collect wiring missing?)\n"
                  f"{(check.stdout + check.stderr)[-1500:]}")
            return 1
        mad = best_of(options.repeat, lambda: pytest_run(mad_argv, empty))
        print(f"(b) pytest --mad-package ... --mad-tags all --collect-only ({items} lines listed): "
              f"{mad * 1000:8.1f} ms")
        print(f"difference (b) - (a): {(mad - bare) * 1000:8.1f} ms "
              f"({(mad - bare) / max(selected, 1) * 1e6:.0f} us per model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
