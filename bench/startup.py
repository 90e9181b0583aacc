"""Start-up: process start to the first container (local) or Job (Kubernetes) (issue 22.5).

    python bench/startup.py                          # local target, 5 interleaved rounds
    python bench/startup.py --target k8s             # the test Kubernetes cluster (tests/infra/start-k8s.sh)
    python bench/startup.py --baseline main --rounds 7   # and git revision REV, side by side

Per round, in turn: a whole ``pytest`` session over a one-model package (its image already built)
and a bare script doing the same with the official client (Docker SDK ``containers.run``;
kubernetes ``create_namespaced_job``), each in a fresh interpreter started from a temp dir (so
each code tree imports its own package). The clock starts just before the child is spawned and
stops when the engine saw the first container created (``docker events``, nanoseconds) or when a
watch on the namespace saw the first Job ADDED. Prints the medians, the difference to the bare
script and the host load. A plain pytest session whose one test runs the bare code is measured
too: what pytest itself adds. Each code tree runs once before the rounds (image built, bytecode
and assertion-rewrite caches written, as after ``pip install``). pytest plugins that are only test extras of this checkout
(hypothesis, pytest-benchmark, pytest-html, pytest-metadata) are disabled in the sessions: a
user's install of pytest-madengine does not bring them.
"""
from __future__ import annotations

import argparse
import shlex
import json
import os
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "tests" / "infra"
sys.path.insert(0, str(REPO))

from bench.trees import baseline_tree  # noqa: E402
BASE = "mad-test/busybox:latest"
NOT_OURS = ["-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:html", "-p", "no:metadata"]

# The bare equivalents, as a script (python -c) and as the one test of a plain pytest session.
BARE_LOCAL = """
import os, docker
docker.from_env().containers.run(os.environ["BENCH_IMAGE"], ["sh", "-c", "echo performance: 1.0 samples_per_second"],
                                 network_mode="host", remove=True)
"""

BARE_K8S = """
import os, time
from kubernetes import client, config
api = config.new_client_from_config(config_file=os.environ["BENCH_KUBECONFIG"])
container = client.V1Container(name="main", image=os.environ["BENCH_IMAGE"], image_pull_policy="IfNotPresent",
                               command=["sh", "-c", "echo performance: 1.0 samples_per_second"])
job = client.V1Job(metadata=client.V1ObjectMeta(generate_name="bare-"), spec=client.V1JobSpec(
    backoff_limit=0, ttl_seconds_after_finished=30, template=client.V1PodTemplateSpec(
        spec=client.V1PodSpec(restart_policy="Never", containers=[container]))))
batch = client.BatchV1Api(api)
created = batch.create_namespaced_job(os.environ["BENCH_NAMESPACE"], job)
# the clock stopped at ADDED; wait for the pod too, so that it does not start beside the next child
while not (batch.read_namespaced_job_status(created.metadata.name, os.environ["BENCH_NAMESPACE"]).status.succeeded):
    time.sleep(0.2)
"""


def bare_test_file(directory: Path, code: str) -> Path:
    """A plain pytest test running ``code`` (the plugin installed but not switched on)."""
    directory.mkdir()
    path = directory / "test_bare.py"
    path.write_text(f"CODE = {code!r}\n\n\ndef test_model():\n    exec(CODE, {{}})\n")
    return path




def this_tree(into: Path) -> Path:
    """This checkout's package (uncommitted edits included), copied into ``into``."""
    shutil.copytree(REPO / "pytest_madengine", into / "pytest_madengine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return into


def write_package(root: Path, model: str) -> Path:
    package = root / "pkg"
    (package / "docker").mkdir(parents=True)
    (package / "scripts" / "m").mkdir(parents=True)
    (package / "docker" / "tiny.none.Dockerfile").write_text(
        f"# CONTEXT {{'gpu_vendor': 'NONE'}}\nARG BASE_DOCKER={BASE}\nFROM $BASE_DOCKER\n")
    (package / "scripts" / "m" / "run.sh").write_text('echo "performance: 1.0 samples_per_second"\n')
    card = {"name": model, "dockerfile": "docker/tiny", "scripts": "scripts/m/run.sh", "n_gpus": "0",
            "owner": "", "training_precision": "", "tags": ["bench"], "args": ""}
    (package / "models.json").write_text(json.dumps([card]))
    return package


class Child:
    """One way to reach the first container/Job: argv, environment and cwd of a fresh interpreter."""

    def __init__(self, argv: list[str], cwd: Path, code: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.argv, self.cwd = argv, cwd
        self.cpu_s: list[float] = []
        self.env = {**os.environ, **(env or {})}
        self.env.pop("PYTHONPATH", None)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode (and pytest's rewrite) caches, as after pip install
        if code is not None:
            self.env["PYTHONPATH"] = str(code)

    def run(self) -> tuple[float, int]:
        """Start it; the wall clock before the spawn and its exit status (output kept on failure).
        ``cpu_s`` gets its whole run's CPU seconds (user + system, its children included)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        proc = subprocess.run(self.argv, cwd=self.cwd, env=self.env, capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_s.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            sys.stderr.write(f"{self.argv[:4]} exited {proc.returncode}:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}\n")
        return started, proc.returncode


def pytest_argv(package: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NOT_OURS, "--mad-package",
            str(package), "--mad-tags", "all", "--mad-context={'gpu_vendor': 'NONE'}", "-n", "0", *extra]


def local_first_create(model: str) -> Callable[[float], float]:
    """Seconds from ``started`` to the first container of an image named after ``model``."""
    import docker

    client = docker.from_env()

    def first(started: float) -> float:
        until = time.time() + 0.5
        events = client.events(since=started - 1, until=until, decode=True,
                               filters={"type": "container", "event": "create"})
        times = [event["timeNano"] / 1e9 for event in events
                 if model in event.get("Actor", {}).get("Attributes", {}).get("image", "")]
        times = [t for t in times if t >= started]
        if not times:
            raise RuntimeError(f"no container of {model} created after the child started")
        return min(times) - started
    return first


class JobWatch:
    """A watch on the namespace's Jobs in a thread: the arrival time of every ADDED Job."""

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        from kubernetes import client, config, watch

        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.batch, self.namespace = client.BatchV1Api(self.api), namespace
        self.added: queue.Queue[float] = queue.Queue()
        self.watch = watch.Watch()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        version = self.batch.list_namespaced_job(self.namespace).metadata.resource_version
        for event in self.watch.stream(self.batch.list_namespaced_job, self.namespace, resource_version=version):
            if event["type"] == "ADDED":
                self.added.put(time.time())

    def first(self, started: float) -> float:
        """Seconds from ``started`` to the first Job ADDED after it; later ones are dropped."""
        seen = 0.0
        while seen < started:
            seen = self.added.get(timeout=30)
        self.clear()
        return seen - started

    def delete_namespace(self) -> None:
        from kubernetes import client

        client.CoreV1Api(self.api).delete_namespace(self.namespace)

    def clear(self) -> None:
        while not self.added.empty():
            self.added.get_nowait()


def k8s_setup() -> tuple[str, str, JobWatch, list[str]]:
    from kubernetes import client, config

    out = subprocess.run(["bash", str(INFRA / "start-k8s.sh")], capture_output=True, text=True, check=True)
    kubeconfig = out.stdout.strip().splitlines()[-1]
    subprocess.run(["bash", str(INFRA / "load-k8s-image.sh"), BASE], check=True, capture_output=True)
    namespace = f"bench-startup-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    while not core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
        time.sleep(0.1)
    watcher = JobWatch(kubeconfig, namespace)
    context = json.dumps({"gpu_vendor": "NONE", "k8s": {"namespace": namespace, "image_loader": [
        "bash", str(INFRA / "load-k8s-image.sh")]}})
    extra = ["--mad-target", "k8s", f"--mad-k8s-kubeconfig={kubeconfig}", f"--mad-context={context}"]
    return kubeconfig, namespace, watcher, extra


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def measure(children: dict[str, Child], first: Callable[[float], float], rounds: int) -> dict[str, list[float]]:
    """Each child once per round, interleaved (round-robin, order rotated per round)."""
    times: dict[str, list[float]] = {name: [] for name in children}
    names = list(children)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            started, code = children[name].run()
            if code == 0:
                times[name].append(first(started))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:.2f} s" for n, v in times.items() if v), flush=True)
    return times


def report(times: dict[str, list[float]], children: dict[str, Child], bare: str) -> None:
    reference = statistics.median(times[bare])
    print(f"{'':<24} {'median s':>9} {'min s':>7} {'max s':>7} {'over bare s':>12} {'ratio':>6} {'runs':>5} "
          f"{'CPU s (whole run)':>18}")
    for name, values in times.items():
        median = statistics.median(values)
        cpu = statistics.median(children[name].cpu_s)
        print(f"{name:<24} {median:>9.3f} {min(values):>7.3f} {max(values):>7.3f} "
              f"{median - reference:>+12.3f} {median / reference:>6.2f} {len(values):>5} {cpu:>18.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=["local", "k8s"], default="local")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also measure git revision REV's package")
    parser.add_argument("--variant", metavar="ARGS", action="append", default=[],
                        help="also measure this tree with these extra pytest arguments (e.g. '--mad-history none'); "
                             "repeatable")
    options = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    model = f"startup{uuid.uuid4().hex[:6]}"
    package = write_package(tmp, model)
    # Both trees are copied to one filesystem: imports from a slower one (a shared mount) differ by 0.5 s.
    codes = {"this tree": this_tree(tmp / "this")}
    if options.baseline:
        codes[options.baseline] = baseline_tree(options.baseline, tmp / "baseline")
    extra: list[str] = []
    if options.target == "k8s":
        kubeconfig, namespace, watcher, extra = k8s_setup()
        first: Callable[[float], float] = watcher.first
    else:
        first = local_first_create(model)
    sessions = {f"pytest ({name})": Child(pytest_argv(package, extra), tmp, code) for name, code in codes.items()}
    for variant in options.variant:
        sessions[f"pytest {variant}"] = Child(pytest_argv(package, [*extra, *shlex.split(variant)]), tmp,
                                              codes["this tree"])
    for session in sessions.values():  # builds (and on k8s loads) the image; writes each tree's bytecode caches
        if session.run()[1] != 0:
            return 1
        session.cpu_s.clear()
    if options.target == "k8s":
        time.sleep(1)  # the warm-up Jobs' events
        watcher.clear()
        code = BARE_K8S
        env = {"BENCH_IMAGE": f"ci-{model}_tiny.none:latest", "BENCH_KUBECONFIG": kubeconfig,
               "BENCH_NAMESPACE": namespace}
    else:
        code, env = BARE_LOCAL, {"BENCH_IMAGE": f"ci-{model}_tiny.none"}
    test = bare_test_file(tmp / "bare", code)
    children = {"bare script": Child([sys.executable, "-c", code], tmp, env=env),
                "bare pytest test": Child([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NOT_OURS,
                                           str(test)], tmp, env=env),
                **sessions}
    print(f"{options.target}: {options.rounds} rounds, {load()}", flush=True)
    try:
        times = measure(children, first, options.rounds)
    finally:
        if options.target == "k8s":
            watcher.delete_namespace()
    print(f"{options.target}: time from spawn to the first {'Job' if options.target == 'k8s' else 'container'}; "
          f"{load()} at the end")
    report(times, children, "bare script")
    return 0


if __name__ == "__main__":
    sys.exit(main())
