"""Per-model overhead of the local target against a plain Docker SDK loop.

    python bench/overhead.py [--models 20] [--skip-pytest]

Generates a package of N trivial models (busybox image, a script printing one performance
line), pre-builds their images, then times:
  1. plain SDK:   N x client.containers.run(image, cmd, remove=True)   (default bridge network)
  2. plain SDK:   the same with network_mode="host" (what the target uses, so like for like)
  3. LocalTarget: N x LocalTarget.run(RunRequest) (mounts, copied model dir, log file, labels)
  4. pytest:      pytest --mad-package PKG --mad-tags all -q -p no:cacheprovider (whole session:
                  interpreter start, collection, image reuse check, N runs, perf.csv, summary)
and prints wall times and the ratios to (1). Needs the Docker engine and mad-test/busybox:latest.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pytest_madengine.context import Context
from pytest_madengine.host import HostFacts

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASE = "mad-test/busybox:latest"
AMD = {"gpu_vendor": "AMD", "guest_os": "UBUNTU"}
SCRIPT = 'echo "performance: 1.0 samples_per_second"\n'


def make_package(root: Path, count: int, prefix: str) -> list[dict]:
    (root / "docker").mkdir(parents=True)
    (root / "docker" / "tiny.ubuntu.amd.Dockerfile").write_text(
        f"# CONTEXT {AMD!r}\nARG BASE_DOCKER={BASE}\nFROM $BASE_DOCKER\n")
    (root / "scripts" / "tiny").mkdir(parents=True)
    (root / "scripts" / "tiny" / "run.sh").write_text(SCRIPT)
    cards = [{"name": f"{prefix}{i:02d}", "dockerfile": "docker/tiny", "scripts": "scripts/tiny/run.sh",
              "n_gpus": "1", "owner": "bench", "training_precision": "", "tags": ["bench"], "args": ""}
             for i in range(count)]
    (root / "models.json").write_text(json.dumps(cards, indent=1))
    return cards


def timed(label: str, action) -> float:
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:7.2f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--skip-pytest", action="store_true", help="skip the full pytest session")
    parser.add_argument("--pytest-arg", action="append", default=[],
                        help="extra argument for the pytest session (repeatable), e.g. --mad-no-sys-env")
    args = parser.parse_args()

    import docker

    from pytest_madengine.cards import ModelCard
    from pytest_madengine.images.build import ensure_image
    from pytest_madengine.settings import Settings
    from pytest_madengine.targets.local.target import LocalTarget, remove_session_containers
    from pytest_madengine.workload.run import RunRequest

    client = docker.from_env()
    work = Path(tempfile.mkdtemp(prefix="mad-bench-"))
    package = work / "pkg"
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    raw_cards = make_package(package, args.models, prefix)
    cards = [ModelCard.from_dict(raw, source="models.json") for raw in raw_cards]
    context = Context.from_json(AMD, host=HostFacts())
    dockerfile = package / "docker" / "tiny.ubuntu.amd.Dockerfile"
    images = [ensure_image(card, dockerfile, package_root=package, context=context, clean_cache=False,
                           log_dir=work / "logs", lock_dir=work / "locks", client=client) for card in cards]
    command = ["bash", "-c", SCRIPT]
    session = f"bench-{uuid.uuid4().hex[:8]}"
    target = LocalTarget(session_id=session, package_root=package, client=client)
    settings = Settings(package=package, gpus="none")

    def plain(image, **extra) -> None:
        client.containers.run(image.name, command, remove=True, **extra)

    def through_target(i: int) -> None:
        outcome = target.run(RunRequest(
            card=cards[i], context=context, image=images[i], gpus=(), settings=settings,
            log_path=work / "runs" / f"{i}.log", work_dir=work / "runs" / str(i), run_id=f"{session}-{i}"))
        assert outcome.exit_code == 0 and "performance:" in outcome.log_path.read_text(), outcome

    def through_pytest() -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--mad-package", str(package), "--mad-tags", "all", "-q",
             "-p", "no:cacheprovider", f"--mad-context={AMD!r}", "--mad-gpus", "none", *args.pytest_arg],
            cwd=work, capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            raise SystemExit("the pytest session failed")

    plain(images[0]); through_target(0)  # warm up the engine's caches and the imports
    # Interleaved per model so that load changes on a shared machine hit all variants alike.
    totals = {"bridge": 0.0, "host": 0.0, "target": 0.0}
    variants = {"bridge": lambda i: plain(images[i]), "host": lambda i: plain(images[i], network_mode="host"),
                "target": through_target}
    for i in range(args.models):
        for name, run in variants.items():
            started = time.perf_counter()
            run(i)
            totals[name] += time.perf_counter() - started
    base, host, ours = totals["bridge"], totals["host"], totals["target"]
    print(f"{args.models} trivial models, images pre-built, runs interleaved")
    print(f"{'plain SDK containers.run (bridge)':<44} {base:7.2f} s")
    print(f"{'plain SDK containers.run (network host)':<44} {host:7.2f} s")
    print(f"{'LocalTarget.run':<44} {ours:7.2f} s")
    print(f"ratio LocalTarget / plain bridge: {ours / base:.2f}x, / plain host: {ours / host:.2f}x")
    print(f"per-model: plain bridge {base / args.models * 1000:.0f} ms, plain host "
          f"{host / args.models * 1000:.0f} ms, LocalTarget {ours / args.models * 1000:.0f} ms")
    if not args.skip_pytest:
        full = timed("pytest --mad-tags all (whole session)", through_pytest)
        print(f"ratio pytest session / plain bridge: {full / base:.2f}x, / plain host: {full / host:.2f}x")
    leftovers = remove_session_containers(session, client, include_kept=True)
    for image in images:
        client.images.remove(image.name, force=True)
    print(f"containers left behind: {leftovers}")


if __name__ == "__main__":
    main()
