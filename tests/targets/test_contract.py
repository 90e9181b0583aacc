"""One conformance suite for every target (as ReFrame's unittests/test_schedulers.py does for its
schedulers): the same lifecycle checks against ``local``, ``slurm``, ``k8s`` and the conftest target
of EXTENDING.md, each on its real backend.

Per target, three real pytest sessions on one package:
1. a session killed (SIGKILL) while its model runs leaves that run behind on the backend;
2. the next session sweeps those leftovers at its start, then runs a model that passes (its value in
   perf.csv), one that fails (its log tail shown) and one that runs into its timeout; a secret of the
   context is in no output file, log or terminal line, and nothing of it is left afterwards;
3. a session stopped with SIGTERM mid-model ends with exit code 2 and leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.acceptance.test_extending import conftest_from_extending

LOADER = str(Path(__file__).resolve().parents[1] / "infra" / "load-k8s-image.sh")
CANARY = f"canary-{uuid.uuid4().hex}"
SCRIPTS = {
    "pass.sh": 'echo "model $MAD_MODEL_NAME"\necho "performance: 42.5 samples_per_second"\n',
    "fail.sh": 'echo "loading weights"\necho "boom: $MAD_MODEL_NAME broke" >&2\nexit 3\n',
    "sleep.sh": "echo sleeping\nsleep 300\n",
}


@dataclass
class Backend:
    """How the suite drives one target: its session arguments and how to see what a run left."""

    name: str
    args: list[str]
    leftovers: Callable[[str], list[str]]  # things on the backend of models named with this prefix


def _docker_leftovers(prefix: str) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        containers = client.containers.list(all=True, sparse=True, filters={"label": "pytest-madengine.model"})
        return [f"container {c.id[:12]}" for c in containers  # sparse: labels at the top of attrs
                if (c.attrs.get("Labels") or {}).get("pytest-madengine.model", "").startswith(prefix)]
    finally:
        client.close()


def _slurm_leftovers(prefix: str) -> list[str]:
    names = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True).stdout
    return [f"job {name}" for name in names.split() if name.startswith(f"mad-{prefix}")]


def _process_leftovers(prefix: str) -> list[str]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            text = environ.read_text()
        except OSError:
            continue
        if f"MAD_MODEL_NAME={prefix}" in text and "SUBPROCESS_TARGET_OWNER=" in text:
            found.append(f"process {environ.parent.name}")
    return found


def _k8s_leftovers(api: object, namespace: str) -> Callable[[str], list[str]]:
    def leftovers(prefix: str) -> list[str]:
        from tests.k8s.test_k8s_session import leftovers as in_namespace

        return in_namespace(api, namespace)
    return leftovers


@pytest.fixture(params=["local", "slurm", "k8s", "subprocess"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    name = request.param
    common = ["--mad-gpus", "none", "-n", "0", "-p", "no:cacheprovider", "--mad-history", "none"]
    secret = {"docker_env_vars": {"MY_PASSWORD": CANARY}, "gpu_vendor": "NONE"}
    if name in ("local", "slurm"):
        request.getfixturevalue("busybox_image")
    if name == "slurm":
        request.getfixturevalue("slurm_cluster")
    if name == "k8s":
        cluster = request.getfixturevalue("k8s_cluster")
        namespace = request.getfixturevalue("k8s_namespace")
        request.getfixturevalue("busybox_image")
        context = {**secret, "k8s": {"namespace": namespace, "image_loader": ["bash", LOADER],
                                     "termination_grace_period_seconds": 2}}
        with cluster.api_client() as api:
            yield Backend(name, [*common, "--mad-target", "k8s", f"--mad-k8s-kubeconfig={cluster.kubeconfig}",
                                 "--mad-context", json.dumps(context)], _k8s_leftovers(api, namespace))
        return
    leftovers = {"local": _docker_leftovers, "slurm": _slurm_leftovers, "subprocess": _process_leftovers}[name]
    yield Backend(name, [*common, "--mad-target", name, "--mad-context", json.dumps(secret)], leftovers)


def write_package(root: Path, prefix: str, *, with_toy_target: bool) -> Path:
    cards = [{"name": f"{prefix}_{kind}", "dockerfile": "docker/bb", "scripts": f"scripts/m/{script}",
              "n_gpus": "0", "args": "", "owner": "t", "training_precision": "", "tags": [tag], **extra}
             for kind, script, tag, extra in (("pass", "pass.sh", "run", {}), ("fail", "fail.sh", "run", {}),
                                              ("timeout", "sleep.sh", "run", {"timeout": 6}),
                                              ("sleep", "sleep.sh", "sleep", {}))]
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    (root / "models.json").write_text(json.dumps(cards))
    for name, text in SCRIPTS.items():
        (root / "scripts" / "m" / name).write_text(text)
    if with_toy_target:
        (root / "conftest.py").write_text(conftest_from_extending())
    return root


def start_session(package: Path, backend: Backend, tags: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pytest", "--mad-tags", tags, *backend.args], cwd=package,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def wait_for(check: Callable[[], list[str]], want_empty: bool, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if bool(found) != want_empty or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_target_contract(backend: Backend, tmp_path: Path) -> None:
    prefix = f"c{uuid.uuid4().hex[:6]}"
    package = write_package(tmp_path / "pkg", prefix, with_toy_target=backend.name == "subprocess")
    sleeping = lambda: backend.leftovers(f"{prefix}_sleep")  # noqa: E731

    killed = start_session(package, backend, "sleep")
    assert wait_for(sleeping, want_empty=False, seconds=180), f"{backend.name}: the model never started"
    os.killpg(killed.pid, signal.SIGKILL)  # pytest and its children: nothing of it cleans up
    killed.communicate(timeout=30)
    assert sleeping(), f"{backend.name}: a killed session's run should still be there for the sweep"

    session = subprocess.run([sys.executable, "-m", "pytest", "--mad-tags", "run", "--junitxml=junit.xml",
                              *backend.args], cwd=package, capture_output=True, text=True, timeout=600)
    output = session.stdout + session.stderr
    assert session.returncode == 1, output
    assert wait_for(sleeping, want_empty=True, seconds=60) == [], "the killed session's run was not swept"
    assert "1 passed" in output and "2 failed" in output, output
    assert f"boom: {prefix}_fail broke" in output  # the failing model's log tail
    assert "timed out" in output
    rows = {row.split(",")[0]: row for row in (package / "perf.csv").read_text().splitlines()[1:]}
    assert ",42.5,samples_per_second," in rows[f"{prefix}_pass"] and ",SUCCESS," in rows[f"{prefix}_pass"]
    assert ",FAILURE," in rows[f"{prefix}_fail"] and ",FAILURE," in rows[f"{prefix}_timeout"]
    assert wait_for(lambda: backend.leftovers(prefix), want_empty=True, seconds=60) == []
    written = [path for path in package.rglob("*") if path.is_file()]
    assert [str(path) for path in written if CANARY in path.read_text(errors="replace")] == []
    assert CANARY not in output

    stopped = start_session(package, backend, "sleep")
    assert wait_for(sleeping, want_empty=False, seconds=180), f"{backend.name}: the model never started"
    stopped.send_signal(signal.SIGTERM)
    tail = stopped.communicate(timeout=120)[0]
    assert stopped.returncode == 2, tail
    assert wait_for(lambda: backend.leftovers(prefix), want_empty=True, seconds=60) == []
