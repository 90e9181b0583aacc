"""The Docker engine dying at any call of a run is one clear paragraph, never a fixture error display.

A Unix-socket proxy in front of the real engine (``DyingEngine``) forwards a session's first ``k``
requests and then "dies": it cuts every open connection (streams in flight too: build output,
attach, wait) and removes its socket, as a crashed dockerd does; either when request ``k + 1``
arrives, or after the engine got it and began to answer (the answer cut in the middle). A first session counts the requests
of a whole run; then one session dies at each of them in turn, so every phase (image inspect, build,
create, attach, start, wait, logs, remove) gets its turn. Each must record the model's FAILURE (or
stop at start with a usage error) with no raw ``requests``/``urllib3`` class escaping as a fixture
error. The real daemon is never touched, so this disturbs no one.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from .conftest import AMD_CPU, card, write_card_package
from .test_run_local import read_perf

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
ENGINE = "/var/run/docker.sock"
REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD) /\S* HTTP/1\.[01]\r\n")
DISPLAYS = ("Traceback", "def mad_", "INTERNALERROR", "urllib3.exceptions.", "requests.exceptions.")
SETUP_ERROR = re.compile(r"_+ ERROR at setup of [^\n]*_+\n(.*?)\n(?:=+ |_+ )", re.DOTALL)


def fixture_displays(output: str) -> list[str]:
    """Raw exception displays, and setup errors that are more than the project's one paragraph
    (a build failure is reported in the setup phase by design, as one ``<model>: ...`` line)."""
    found = [display for display in DISPLAYS if display in output]
    found += [body for body in SETUP_ERROR.findall(output)
              if len(body.strip().splitlines()) > 1 or not body.startswith("model: ")]
    return found


class DyingEngine:
    """Proxies ``path`` to the real engine; dies when request number ``after + 1`` arrives (``mid_answer``
    False), or once the engine has it and starts answering, half of the first piece of the answer sent."""

    def __init__(self, path: Path, after: int, mid_answer: bool = False) -> None:
        self.path, self.after, self.mid_answer = path, after, mid_answer
        self.requests = 0
        self.dead = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.dead.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(ENGINE)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counting: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._lock:
                    self.requests += len(REQUEST_LINE.findall(data)) if counting else 0
                    dying = self.requests > self.after and counting != self.mid_answer
                if dying:
                    if self.mid_answer:
                        sink.sendall(data[:max(1, len(data) // 2)])
                    self.die()
                    return
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def die(self) -> None:
        self.dead.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with contextlib.suppress(OSError):
            self.path.unlink()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def run_session(package: Path, workdir: Path, after: int,
                mid_answer: bool = False) -> tuple[subprocess.CompletedProcess[str], int]:
    path = Path(tempfile.mkdtemp(prefix="mad-engine-")) / "docker.sock"  # a socket path has ~100 bytes at most
    engine = DyingEngine(path, after, mid_answer)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DOCKER_HOST": f"unix://{path}", "DOCKER_BUILDKIT": "0"}
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "--mad-package", str(package), "--mad-tags", "f",
                               AMD_CPU, "--mad-gpus", "none", "-p", "no:cacheprovider", "-n", "0"],
                              cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    finally:
        engine.die()
        path.parent.rmdir()
    return done, engine.requests


@pytest.mark.parametrize("mid_answer", [False, True], ids=["before-the-call", "mid-answer"])
def test_engine_dying_at_each_call_of_a_run_is_one_paragraph(pytester: pytest.Pytester, busybox_image: str,
                                                            mid_answer: bool) -> None:
    package = write_card_package(pytester.path / "pkg", [card("model", "scripts/ok.sh", tags=["f"])],
                                 {"scripts/ok.sh": "echo started\necho performance: 1 ops\n"})
    healthy, total = run_session(package, pytester.path, after=10**9)
    assert healthy.returncode == 0, healthy.stdout
    assert fixture_displays(healthy.stdout) == []
    assert total >= 5
    survived = []
    for after in range(total):
        workdir = pytester.path / f"dies-at-{after}"
        workdir.mkdir()
        done, _ = run_session(package, workdir, after, mid_answer)
        output = done.stdout + done.stderr
        assert fixture_displays(output) == [], f"dies at request {after + 1}:\n{output}"
        if done.returncode == pytest.ExitCode.USAGE_ERROR:
            assert "cannot reach the Docker daemon" in done.stderr, output
        else:
            assert done.returncode in (0, 1), output  # 0: the engine died after the model's last call
            rows = read_perf(workdir / "perf.csv")
            assert [row["model"] for row in rows] == ["model"], output
            assert done.returncode == 0 or rows[0]["status"] == "FAILURE"
        survived.append(after)
    print(f"engine deaths tried: {total}, handled cleanly: {len(survived)}")
