"""madengine's in-container variables seen from inside a real container (local target).

Expected values are madengine's: ``MAD_SYSTEM_HIP_VERSION`` / ``MAD_SYSTEM_GPU_PRODUCT_NAME`` from the
host (``core/context.py``), ``JENKINS_BUILD_NUMBER`` = the host's ``BUILD_NUMBER`` (else ``0``), ``ROCM_PATH``
on AMD = the image's own else ``/opt/rocm`` (``rocm_path_resolver``), the host variables of
``container_runner``'s pass-through list, ``<CRED>_<KEY>`` from ``credential.json`` for the card's ``cred``
(environment and build args).
"""
from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

import pytest

from pytest_madengine.context import build_context
from pytest_madengine.host import HostFacts
from pytest_madengine.images.build import ensure_image
from pytest_madengine.records import ImageRef
from pytest_madengine.settings import Settings
from pytest_madengine.targets.local.target import LocalTarget
from pytest_madengine.workload.run import RunRequest
from tests.docker.test_launcher_contracts import ENV_SCRIPT, container_env
from tests.infra.containers import run_output
from tests.slurm.helpers import BUSYBOX, make_card, make_package

pytestmark = pytest.mark.docker

SECRET = "canary-env-3e8b"
MI300X = HostFacts(gpu_vendor="AMD", gpu_count=8, gpu_architecture="gfx942", gpu_product="AMD Instinct MI300X",
                   hip_version="6.2", host_os="UBUNTU", machine_name="node-a")
HOST_ENV = {"BUILD_NUMBER": "314", "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29511", "NCCL_DEBUG": "WARN",
            "NCCL_IB_DISABLE": "1", "MIOPEN_USER_DB_PATH": "/tmp/miopen-db", "TORCH_ELASTIC_RDZV_TIMEOUT": "900"}


@pytest.fixture
def local(tmp_path, docker_engine, busybox_image, clean_containers, monkeypatch):
    """(package, run(card, image=BUSYBOX) -> container env) with madengine's host variables set."""
    for name, value in HOST_ENV.items():
        monkeypatch.setenv(name, value)
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    (package / "credential.json").write_text(json.dumps({"MAD_HF": {"username": "bot", "password": SECRET}}))
    session = f"cenv-{tmp_path.name[-8:]}"
    clean_containers.value = session
    target = LocalTarget(session_id=session, package_root=package, client=docker_engine)
    context = build_context(context_text="{'gpu_vendor': 'AMD'}", host=MI300X)

    def run(card, image: str = BUSYBOX) -> dict[str, str]:
        run_id = uuid.uuid4().hex[:8]
        request = RunRequest(card=card, context=context, image=ImageRef(name=image), gpus=(),
                             settings=Settings(package=package), log_path=tmp_path / f"{run_id}.log",
                             work_dir=tmp_path / f"work-{run_id}", run_id=run_id)
        outcome = target.run(request)
        assert outcome.exit_code == 0, outcome.error
        return container_env(outcome.log_path.read_text())
    yield package, run
    target.close()


def test_madengines_variables_reach_the_container(local):
    _, run = local
    env = run(make_card("env", "env.sh", cred="MAD_HF"))
    expected = {
        "MAD_SYSTEM_HIP_VERSION": "6.2", "MAD_SYSTEM_GPU_PRODUCT_NAME": "AMD Instinct MI300X",
        "JENKINS_BUILD_NUMBER": "314", "ROCM_PATH": "/opt/rocm",
        "MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29511", "NCCL_DEBUG": "WARN", "NCCL_IB_DISABLE": "1",
        "MIOPEN_USER_DB_PATH": "/tmp/miopen-db", "TORCH_ELASTIC_RDZV_TIMEOUT": "900",
        "MAD_HF_USERNAME": "bot", "MAD_HF_PASSWORD": SECRET,
    }
    assert {key: env.get(key) for key in expected} == expected


def test_rocm_path_is_the_images_own_when_it_sets_one(local, docker_engine):
    _, run = local
    tag = f"mad-test/rocm-env-{uuid.uuid4().hex[:8]}:latest"
    dockerfile = f"FROM {BUSYBOX}\nENV ROCM_PATH=/opt/rocm-6.3.1\n".encode()
    docker_engine.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    try:
        assert run(make_card("env", "env.sh"), image=tag)["ROCM_PATH"] == "/opt/rocm-6.3.1"
    finally:
        docker_engine.images.remove(tag, force=True)


def test_a_card_without_its_credential_fails_before_the_container_starts(local, tmp_path, docker_engine):
    package, _ = local
    target = LocalTarget(session_id=f"cenv-miss-{tmp_path.name[-6:]}", package_root=package, client=docker_engine)
    request = RunRequest(card=make_card("env", "env.sh", cred="MAD_NOPE"),
                         context=build_context(context_text="{}", host=HostFacts()),
                         image=ImageRef(name=BUSYBOX), gpus=(), settings=Settings(package=package),
                         log_path=tmp_path / "miss.log", work_dir=tmp_path / "work-miss", run_id="miss")
    outcome = target.run(request)
    assert outcome.exit_code is None and "credential.json has no entry 'MAD_NOPE'" in outcome.error
    assert "card 'env', field 'cred'" in outcome.error


def test_credential_build_args_reach_the_build(tmp_path, docker_engine, busybox_image):
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    (package / "credential.json").write_text(json.dumps({"MAD_HF": {"username": "bot", "password": SECRET}}))
    dockerfile = package / "docker" / "cred.Dockerfile"
    dockerfile.write_text(f"FROM {BUSYBOX}\nARG MAD_HF_USERNAME\nRUN echo \"user=$MAD_HF_USERNAME\" > /cred-user\n")
    name = f"credtest-{uuid.uuid4().hex[:8]}"
    card = make_card(name, "env.sh", dockerfile="docker/cred", cred="MAD_HF")
    context = build_context(context_text="{}", host=HostFacts())
    ref = ensure_image(card, dockerfile, package_root=package, context=context, clean_cache=False,
                       log_dir=tmp_path / "logs", lock_dir=None, client=docker_engine)
    try:
        assert run_output(docker_engine, ref.name, ["cat", "/cred-user"]).strip() == b"user=bot"
        assert SECRET not in (tmp_path / "logs" / f"{ref.name}.build.log").read_text()
    finally:
        docker_engine.images.remove(ref.name, force=True)


NVIDIA_STANDIN = """#!/bin/sh
case "$1" in
  --query-gpu=index*) cat /smi/query.csv ;;
  --query-gpu=driver_version*) echo 550.54.15 ;;
  *) cat /smi/summary.txt ;;
esac
"""


@pytest.fixture
def smi_image(docker_engine, busybox_image, tmp_path):
    """busybox with a stand-in nvidia-smi answering from the recorded outputs in tests/data/smi."""
    smi = Path(__file__).resolve().parents[1] / "data" / "smi"
    context = tmp_path / "smi-image"
    context.mkdir()
    (context / "nvidia-smi").write_text(NVIDIA_STANDIN)
    (context / "query.csv").write_text((smi / "nvidia_smi_query_h100.csv").read_text())
    (context / "summary.txt").write_text((smi / "nvidia_smi_h100_summary.txt").read_text())
    (context / "Dockerfile").write_text(f"FROM {BUSYBOX}\nCOPY query.csv summary.txt /smi/\n"
                                        "COPY nvidia-smi /bin/nvidia-smi\nRUN chmod 755 /bin/nvidia-smi\n")
    tag = f"mad-test/smi-{uuid.uuid4().hex[:8]}:latest"
    docker_engine.images.build(path=str(context), tag=tag, rm=True)
    yield tag
    docker_engine.images.remove(tag, force=True)


def run_logged(package, tmp_path, docker_engine, card, image, settings=None, context_text="{}", *, leak_check):
    session = f"sysenv-{tmp_path.name[-8:]}"
    leak_check.value = session  # look only at this test's containers
    target = LocalTarget(session_id=session, package_root=package, client=docker_engine)
    run_id = uuid.uuid4().hex[:8]
    request = RunRequest(card=card, context=build_context(context_text=context_text, host=HostFacts()),
                         image=ImageRef(name=image), gpus=(), settings=settings or Settings(package=package),
                         log_path=tmp_path / "logs" / f"{card.name}.run.log", work_dir=tmp_path / f"w-{run_id}",
                         run_id=run_id)
    try:
        outcome = target.run(request)
    finally:
        target.close()
    assert outcome.exit_code == 0, outcome.error
    return outcome


def test_sys_env_capture_tops_the_log_and_writes_the_env_csv(tmp_path, docker_engine, smi_image, clean_containers):
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    (package / "credential.json").write_text(json.dumps({"MAD_HF": {"username": "bot", "password": SECRET}}))
    outcome = run_logged(package, tmp_path, docker_engine, make_card("envcap", "env.sh", cred="MAD_HF"), smi_image,
                         leak_check=clean_containers)
    log = outcome.log_path.read_text().splitlines()
    assert log[0] == "==== pytest-madengine: system environment (lite) ===="
    assert "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |" in log[:6]
    env_csv = tmp_path / "logs" / "envcap_env.csv"
    assert outcome.extra["env_csv"] == str(env_csv)
    rows = {(row[0], row[1]): row[2] for row in csv.reader(env_csv.read_text().splitlines())}
    assert rows[("cuda", "driver")] == "550.54.15" and rows[("gpu", "0")].startswith("NVIDIA H100 80GB HBM3 sm_90")
    assert rows[("env", "MAD_MODEL_NAME")] == "envcap" and rows[("os", "kernel")].startswith("Linux")
    assert SECRET not in env_csv.read_text() and ("env", "MAD_HF_USERNAME") not in rows  # hidden by name


def test_sys_env_capture_is_off_with_the_option_or_the_context(tmp_path, docker_engine, smi_image, clean_containers):
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT})
    card = make_card("noenv", "env.sh")
    off = run_logged(package, tmp_path, docker_engine, card, smi_image, Settings(package=package, no_sys_env=True),
                     leak_check=clean_containers)
    assert "env_csv" not in off.extra and "system environment" not in off.log_path.read_text()
    ctx = run_logged(package, tmp_path, docker_engine, card, smi_image, context_text="{'gen_sys_env_details': False}",
                     leak_check=clean_containers)
    assert "env_csv" not in ctx.extra
    full = run_logged(package, tmp_path, docker_engine, card, smi_image, context_text="{'rocenv_mode': 'full'}",
                      leak_check=clean_containers)
    rows = {(row[0], row[1]) for row in csv.reader(Path(str(full.extra["env_csv"])).read_text().splitlines())}
    assert ("env", "PATH") in rows  # full mode keeps every variable


def test_madengines_privileges_inside_the_container(tmp_path, docker_engine, busybox_image, clean_containers):
    script = "[ -c /dev/fuse ] && echo fuse=yes\ngrep CapEff /proc/self/status\necho 'performance: 1 x'\n"
    package = make_package(tmp_path / "pkg", {"priv.sh": script})
    outcome = run_logged(package, tmp_path, docker_engine, make_card("priv", "priv.sh"), BUSYBOX,
                         Settings(package=package, no_sys_env=True), leak_check=clean_containers)
    text = outcome.log_path.read_text()
    assert "fuse=yes" in text
    cap_eff = int(next(line for line in text.splitlines() if line.startswith("CapEff")).split()[1], 16)
    assert cap_eff & (1 << 21) and cap_eff & (1 << 19)  # CAP_SYS_ADMIN, CAP_SYS_PTRACE
