"""madengine side by side: the same models of one build manifest through madengine and through us (issue 22.7).

    git -C MADENGINE_REPO archive HEAD | tar -x -C /tmp/madengine-src       # its source, any revision
    python bench/madengine_compare.py /tmp/madengine-src [--models 5] [--rounds 3] [--venv DIR]

Installs madengine from that source into a venv of its own (``--venv``, created once; a source
without ``.git`` is copied and committed first, because madengine's version comes from git tags),
writes a package of N dummy models, builds their images once with ``--mad-build-only`` (the
madengine-format ``build_manifest.json``), then per round, interleaved and in alternating order,
times ``madengine run --manifest-file build_manifest.json`` and ``pytest --mad-manifest
build_manifest.json`` in two copies of the package, each with its tool's defaults (the system
environment capture on in both, perf.csv, perf_super.*, madengine's summary; our history too).
Both must report every model SUCCESS. Prints the median wall per model and the ratio.

This host has no GPU, so both get an AMD context that describes one GPU (``docker_gpus``,
``MAD_SYSTEM_*``) and madengine's ``gpu_renderDs: None``; madengine always passes
``--device=/dev/kfd`` and runs ``docker`` through a shell, so its PATH starts with a ``docker``
wrapper that drops ``/dev/kfd`` and ``/dev/dri`` device flags (one ``sh`` exec per docker call).
The dummy image is ``mad-test/python:bookworm`` (tests/infra/base-images.sh) plus what madengine
expects of a ROCm image: a ``video`` group and ``git``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = "mad-test/python:bookworm"
GPU = {"gpu_vendor": "AMD", "guest_os": "UBUNTU", "docker_gpus": "0",
       "docker_env_vars": {"MAD_SYSTEM_NGPUS": "1", "MAD_SYSTEM_GPU_ARCHITECTURE": "gfx942",
                           "MAD_SYSTEM_HIP_VERSION": "6.3", "MAD_SYSTEM_GPU_PRODUCT_NAME": "MI300X"}}
MADENGINE_CONTEXT = {**GPU, "gpu_renderDs": None}  # no render nodes to look up (madengine reads rocm-smi)
DOCKERFILE = f"""# CONTEXT {{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}}
ARG BASE_DOCKER={BASE}
FROM $BASE_DOCKER
# what madengine expects of a ROCm image: a video group (--group-add video) and git (safe.directory)
RUN grep -q '^video:' /etc/group || echo 'video:x:44:' >> /etc/group; \\
    command -v git || {{ printf '#!/bin/sh\\nexit 0\\n' > /usr/bin/git; chmod 0755 /usr/bin/git; }}
"""
SCRIPT = 'echo "performance: 1.0 samples_per_second"\n'
DOCKER_WRAPPER = """#!/bin/sh
# No GPU here: drop the AMD device flags madengine always adds, run the real docker.
for arg do
  shift
  case "$arg" in --device=/dev/kfd|--device=/dev/dri/*) continue ;; esac
  set -- "$@" "$arg"
done
exec {docker} "$@"
"""
NOT_OURS = ["-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:html", "-p", "no:metadata"]
REPO = Path(__file__).resolve().parents[1]


def madengine_venv(source: Path, venv: Path) -> Path:
    """``venv``'s madengine command, installing it from ``source`` first when it is missing."""
    command = venv / "bin" / "madengine"
    if command.exists():
        return command
    with tempfile.TemporaryDirectory(prefix="madengine-src-") as tmp:
        if not (source / ".git").exists():  # versioningit needs a git tag to name the version
            copy = Path(tmp) / "src"
            shutil.copytree(source, copy)
            git = ["git", "-C", str(copy), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
            for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "source"], ["tag", "v0.0.0"]):
                subprocess.run([*git, *args], check=True)
            source = copy
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)], check=True)
    return command


def write_package(root: Path, models: int) -> Path:
    (root / "docker").mkdir(parents=True)
    (root / "scripts" / "dummy").mkdir(parents=True)
    (root / "docker" / "dummy.ubuntu.amd.Dockerfile").write_text(DOCKERFILE)
    (root / "scripts" / "dummy" / "run.sh").write_text(SCRIPT)
    cards = [{"name": f"dummy_{i}", "dockerfile": "docker/dummy", "scripts": "scripts/dummy/run.sh", "n_gpus": "1",
              "owner": "bench", "training_precision": "", "tags": ["bench"], "args": ""} for i in range(models)]
    (root / "models.json").write_text(json.dumps(cards, indent=1))
    return root


def pytest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NOT_OURS, f"--mad-context={GPU!r}", *args]


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches, as after pip install
    return env


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode} in {cwd}:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return wall


def check_successes(perf_csv: Path, models: int, rounds_done: int) -> None:
    """Every run of every model so far is in perf.csv with status SUCCESS."""
    with perf_csv.open(newline="") as handle:
        statuses = [row["status"] for row in csv.DictReader(handle)]
    if statuses.count("SUCCESS") != models * rounds_done or len(statuses) != models * rounds_done:
        raise SystemExit(f"{perf_csv}: expected {models * rounds_done} SUCCESS rows, found {statuses}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("madengine_source", type=Path, help="madengine's source tree (git archive or clone)")
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "madengine-bench-venv")
    options = parser.parse_args(argv)
    madengine = madengine_venv(options.madengine_source.resolve(), options.venv)
    real_docker = shutil.which("docker")
    if real_docker is None:
        raise SystemExit("docker is not on PATH")
    work = Path(tempfile.mkdtemp(prefix="bench-madengine-"))
    wrapper = work / "bin" / "docker"
    wrapper.parent.mkdir()
    wrapper.write_text(DOCKER_WRAPPER.format(docker=real_docker))
    wrapper.chmod(0o755)
    package = write_package(work / "pkg", options.models)
    timed(pytest_command("--mad-tags", "bench", "--mad-build-only"), package, child_env())
    ours, theirs = work / "ours", work / "madengine"
    for copy in (ours, theirs):
        shutil.copytree(package, copy)
    runs = {
        "madengine": ([str(madengine), "run", "--manifest-file", "build_manifest.json",
                       "--additional-context", repr(MADENGINE_CONTEXT)], theirs,
                      child_env(PATH=f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")),
        "pytest-madengine": (pytest_command("--mad-manifest", "build_manifest.json"), ours, child_env()),
    }
    walls: dict[str, list[float]] = {name: [] for name in runs}
    load = os.getloadavg()[0]
    for round_ in range(options.rounds):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            argv_, cwd, env = runs[name]
            walls[name].append(timed(argv_, cwd, env))
            check_successes(cwd / "perf.csv", options.models, round_ + 1)
        print(f"round {round_ + 1}/{options.rounds}: " + ", ".join(f"{n} {w[-1]:.2f} s" for n, w in walls.items()),
              flush=True)
    per_model = {name: statistics.median(values) / options.models for name, values in walls.items()}
    print(f"{options.models} models x {options.rounds} rounds, load average {load:.1f} -> {os.getloadavg()[0]:.1f} "
          f"(1 min) on {os.cpu_count()} CPUs")
    for name, seconds in per_model.items():
        print(f"{name:<18} median {seconds:6.2f} s per model")
    print(f"ratio: {per_model['pytest-madengine'] / per_model['madengine']:.3f} x madengine's wall per model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
