"""Data providers (data.json) against the real engine: local mounts, custom downloads, perf.csv."""
from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_madengine.images.build import ensure_image
from pytest_madengine.images.dockerfiles import resolve_dockerfiles
from pytest_madengine.records import FAILURE, SUCCESS, ImageRef
from pytest_madengine.results.judge import judge
from pytest_madengine.settings import Settings
from pytest_madengine.targets.local.target import LocalTarget
from pytest_madengine.workload.run import RunRequest
from tests.acceptance.conftest import AMD_CPU, card, write_card_package
from tests.acceptance.test_run_local import read_perf
from tests.docker.fakes import RUNNABLE, amd_context, load_cards

pytestmark = pytest.mark.docker
CARD = load_cards()["pass"]

READER = """\
echo "DATAHOME $MAD_DATAHOME DATANAME $MAD_DATANAME"
if echo x > "$MAD_DATAHOME/written" 2>/dev/null; then echo "WRITE ok"; else echo "WRITE refused"; fi
echo "performance: $(cat "$MAD_DATAHOME/value.txt") items_per_second"
"""
DOWNLOADER = """\
echo "downloading $1 into $(pwd)"
echo 42 > value.txt
dd if=/dev/zero of=blob.bin bs=1024 count=64 2>/dev/null
sleep 0.3
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data-providers") / "pkg"
    shutil.copytree(RUNNABLE, root)
    (root / "scripts/runnable/run_read.sh").write_text(READER)
    (root / "scripts/common/data").mkdir(parents=True)
    (root / "scripts/common/data/download.sh").write_text(DOWNLOADER)
    (root / "scripts/common/data/broken.sh").write_text("echo broken download\nexit 5\n")
    return root


@pytest.fixture(scope="module")
def image(package, docker_engine, busybox_image, tmp_path_factory) -> ImageRef:
    logs = tmp_path_factory.mktemp("build-logs")
    context = amd_context()
    return ensure_image(CARD, resolve_dockerfiles(CARD, package, context.data)[0], package_root=package,
                        context=context, clean_cache=False, log_dir=logs, lock_dir=logs / "locks",
                        client=docker_engine)


@pytest.fixture
def target(package, docker_engine, clean_containers):
    session_id = f"test-{uuid.uuid4().hex[:8]}"
    clean_containers.value = session_id
    target = LocalTarget(session_id=session_id, package_root=package, client=docker_engine)
    yield target
    target.cancel_all()


def run(target: LocalTarget, package: Path, image: ImageRef, tmp_path: Path, data: dict, **context_keys):
    """Run the reader card on dataname 'd' with ``data`` as the context's data; (outcome, judged result)."""
    card_ = replace(CARD, scripts="scripts/runnable/run_read.sh", data="d", args="")
    context = amd_context(data=data, **context_keys)
    request = RunRequest(card=card_, context=context, image=image, gpus=(),
                         settings=Settings(package=package, gpus="none"), log_path=tmp_path / "run.log",
                         work_dir=tmp_path / "work", run_id=uuid.uuid4().hex[:8])
    outcome = target.run(request)
    return outcome, judge(card_, outcome, image=image, context=context.data, gpus=())


def test_local_provider_mounts_host_data_read_only(target, package, image, tmp_path) -> None:
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "value.txt").write_text("7.5\n")
    outcome, result = run(target, package, image, tmp_path, {"d": {"local": {"path": str(host)}}})
    log = outcome.log_path.read_text()
    assert result.status == SUCCESS, log
    assert "DATAHOME /data_dlm_0 DATANAME d" in log and "WRITE refused" in log
    assert (result.performance, result.metric) == ("7.5", "items_per_second")
    row = result.rows[0]
    assert (row["dataname"], row["data_provider_type"], row["data_size"]) == ("d", "local", "")
    assert not (host / "written").exists()


def test_local_provider_readwrite(target, package, image, tmp_path) -> None:
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "value.txt").write_text("1\n")
    data = {"d": {"local": {"path": str(host), "home": "/rw", "readwrite": "true"}}}
    outcome, result = run(target, package, image, tmp_path, data)
    assert "DATAHOME /rw_0" in outcome.log_path.read_text() and result.status == SUCCESS
    assert (host / "written").read_text() == "x\n"


def test_custom_provider_downloads_into_a_host_mirror(target, package, image, tmp_path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    data = {"d": {"custom": {"path": "scripts/common/data/download.sh", "args": "'some set'",
                             "mirrorlocal": str(mirror)}}}
    pre = [{"path": "scripts/common/pre_hello.sh", "args": "first"}]
    outcome, result = run(target, package, image, tmp_path, data, pre_scripts=pre)
    log = outcome.log_path.read_text()
    assert result.status == SUCCESS, log
    assert log.index("downloading some set into /data_dlm_0") < log.index("PRE [first]") < log.index("performance: 42")
    assert (mirror / "d" / "value.txt").read_text() == "42\n"
    row = result.rows[0]
    assert row["data_provider_type"] == "custom" and row["data_size"].endswith("K")
    assert 0.25 <= float(row["data_download_duration"]) < 30


def test_failing_custom_script_fails_the_run_before_the_model(target, package, image, tmp_path) -> None:
    data = {"d": {"custom": {"path": "scripts/common/data/broken.sh"}}}
    outcome, result = run(target, package, image, tmp_path, data)
    log = outcome.log_path.read_text()
    assert outcome.exit_code == 5 and result.status == FAILURE
    assert "broken download" in log and "data script /myworkspace/scripts/common/data/broken.sh failed" in log
    assert "DATAHOME" not in log and "performance:" not in log


def test_data_json_in_a_session_fills_the_perf_csv_row(pytester: pytest.Pytester, busybox_image: str) -> None:
    pkg = write_card_package(pytester.path / "pkg", [card("reader", "scripts/read.sh", data="d")], {
        "scripts/read.sh": READER, "scripts/common/data/download.sh": DOWNLOADER})
    (pkg / "data.json").write_text(json.dumps({"d": {"custom": {"path": "scripts/common/data/download.sh"}}}))
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "reader", AMD_CPU, "--mad-gpus", "none",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    (row,) = read_perf(pytester.path / "perf.csv")
    assert (row["dataname"], row["data_provider_type"], row["performance"]) == ("d", "custom", "42")
    assert row["data_size"].endswith("K") and float(row["data_download_duration"]) >= 0.25
