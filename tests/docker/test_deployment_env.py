"""The context's top-level ``env_vars`` and ``docker_mounts`` in a real local container.

madengine exports the top-level ``env_vars`` into its SLURM jobs and Kubernetes pods
(``deployment/slurm.py``, ``k8s_template_context.py:_prepare_env_vars``); here they reach every target's
container, between the card's ``env_vars`` and the context's ``docker_env_vars``.
"""
from __future__ import annotations

import json
import uuid

import pytest

from pytest_madengine.context import build_context
from pytest_madengine.host import HostFacts
from pytest_madengine.records import ImageRef
from pytest_madengine.settings import Settings
from pytest_madengine.targets.local.options import MountWarning
from pytest_madengine.targets.local.target import LocalTarget
from pytest_madengine.workload.run import RunRequest
from tests.docker.test_launcher_contracts import ENV_SCRIPT, container_env
from tests.slurm.helpers import BUSYBOX, make_card, make_package

pytestmark = pytest.mark.docker


@pytest.fixture
def run_local(tmp_path, docker_engine, busybox_image, clean_containers):
    """run(card, context dict) -> the run's log text, in a real container."""
    package = make_package(tmp_path / "pkg", {"env.sh": ENV_SCRIPT,
                                              "cat.sh": "cat /data/which.txt\necho 'performance: 1 x'\n"})
    session = f"denv-{tmp_path.name[-8:]}"
    clean_containers.value = session
    target = LocalTarget(session_id=session, package_root=package, client=docker_engine)

    def run(card, context: dict) -> str:
        run_id = uuid.uuid4().hex[:8]
        request = RunRequest(card=card, context=build_context(context_text=json.dumps(context), host=HostFacts()),
                             image=ImageRef(name=BUSYBOX), gpus=(), settings=Settings(package=package),
                             log_path=tmp_path / f"{run_id}.log", work_dir=tmp_path / f"work-{run_id}", run_id=run_id)
        outcome = target.run(request)
        assert outcome.exit_code == 0, outcome.error
        return outcome.log_path.read_text()
    yield run
    target.close()


def test_env_vars_reach_the_container_with_madengines_precedence(run_local, monkeypatch):
    monkeypatch.delenv("MIOPEN_USER_DB_PATH", raising=False)
    card = make_card("envs", "env.sh", env_vars={"FROM_CARD": "card", "SHARED": "card", "BOTH": "card"})
    context = {"gpu_vendor": "NONE",
               "env_vars": {"SHARED": "env_vars", "BOTH": "env_vars", "NCCL_IB_HCA": "mlx5_0:1,mlx5_1:1",
                            "MIOPEN_USER_DB_PATH": "/tmp/.miopen"},
               "docker_env_vars": {"BOTH": "docker_env_vars"},
               "slurm": {"env_vars": {"ALIASED": "slurm.env_vars", "SHARED": "loses"}}}
    env = container_env(run_local(card, context))
    assert env["FROM_CARD"] == "card"
    assert env["SHARED"] == "env_vars"  # the context's env_vars over the card's; over its slurm.env_vars alias
    assert env["BOTH"] == "docker_env_vars"  # docker_env_vars, the container's own, wins
    assert env["NCCL_IB_HCA"] == "mlx5_0:1,mlx5_1:1"
    assert env["ALIASED"] == "slurm.env_vars"
    assert env["MIOPEN_USER_DB_PATH"] == "/tmp/.miopen"


def test_a_host_miopen_cache_dir_wins_over_env_vars(run_local, monkeypatch):
    """madengine's rule: MIOPEN_USER_DB_PATH set by the job (per process) beats the config's value."""
    monkeypatch.setenv("MIOPEN_USER_DB_PATH", "/tmp/.miopen/node_0_rank_0")
    env = container_env(run_local(make_card("miopen", "env.sh"),
                                  {"gpu_vendor": "NONE", "env_vars": {"MIOPEN_USER_DB_PATH": "/tmp/.miopen"}}))
    assert env["MIOPEN_USER_DB_PATH"] == "/tmp/.miopen/node_0_rank_0"


def test_the_cards_mount_wins_over_docker_mounts_on_the_same_path(run_local, tmp_path):
    """Docker refuses two mounts on one container path; the card's -v is used and the context's is named."""
    mine, theirs = tmp_path / "card-data", tmp_path / "context-data"
    for folder, text in ((mine, "from the card"), (theirs, "from the context")):
        folder.mkdir()
        (folder / "which.txt").write_text(text)
    card = make_card("mounts", "cat.sh", additional_docker_run_options=f"-v {mine}:/data/")
    with pytest.warns(MountWarning, match=r"card 'mounts'.*mount /data, which the context's docker_mounts"):
        log = run_local(card, {"gpu_vendor": "NONE", "docker_mounts": {"/data": str(theirs)}})
    assert "from the card" in log and "from the context" not in log
