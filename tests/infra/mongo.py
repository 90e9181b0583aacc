"""A real MongoDB-protocol server for the upload tests: FerretDB 1.x with its SQLite backend.

No registry ships a mongod binary; FerretDB builds from its Go module (tests/infra/build-ferretdb.sh,
cached by version under /var/cache/mad-test, so only the first session builds: ~3 min cold, nothing
warm). The server runs niced, bound to 127.0.0.1 on a free port, with its data in the session's temp
dir, and is stopped at the end of the session. Without Go the tests skip (fail under CI).
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.fixtures import _check, _free_port, run_infra_script


@pytest.fixture(scope="session")
def mongodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URI of a running FerretDB (MongoDB wire protocol) on 127.0.0.1."""
    built = run_infra_script("build-ferretdb.sh", timeout=1200)
    _check(built, "build-ferretdb.sh")
    binary = built.stdout.strip().splitlines()[-1]
    data = tmp_path_factory.mktemp("ferretdb")
    port = _free_port()
    command = ["nice", "-n", "10", binary, "--handler=sqlite", f"--sqlite-url=file:{data}/",
               f"--state-dir={data}", f"--listen-addr=127.0.0.1:{port}", "--debug-addr=-",
               "--telemetry=disable", "--log-level=WARN"]
    log = (data / "ferretdb.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    uri = f"mongodb://127.0.0.1:{port}"
    try:
        _wait_ready(uri, server, data / "ferretdb.log")
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_ready(uri: str, server: subprocess.Popen[bytes], log: Path) -> None:
    import pymongo
    from pymongo.errors import PyMongoError

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"ferretdb exited {server.returncode}:\n{log.read_text()[-2000:]}")
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=1000)
        try:
            client.admin.command("ping")
            return
        except PyMongoError:
            time.sleep(0.5)
        finally:
            client.close()
    raise RuntimeError(f"ferretdb did not answer on {uri} within 60 s:\n{log.read_text()[-2000:]}")
