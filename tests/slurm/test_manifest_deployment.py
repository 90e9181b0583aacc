"""A build manifest carries its deployment (madengine's ``run_orchestrator._load_and_merge_manifest``):
``--mad-manifest`` alone runs the models where and how the build's context said, the run's own context
winning key by key, secrets never in the manifest."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

SHOW = ('for v in FROM_DEPLOY FROM_BUILD_CTX SHARED HF_TOKEN MAD_DEPLOYMENT_TYPE; do eval "echo $v=\\${$v}"; done\n'
        'echo "performance: 2.5 samples_per_second"\n')
SECRET = "hf-canary-5d1e0c"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def this_checkout(monkeypatch):
    """The pytest subprocesses import this checkout's plugin (not another install of it)."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def write_package(root: Path) -> None:
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "docker").mkdir()
    (root / "docker" / "bb.Dockerfile").write_text("# CONTEXT {'gpu_vendor': 'NONE'}\nFROM mad-test/busybox:latest\n")
    (root / "models.json").write_text(json.dumps([{"name": "deployed", "dockerfile": "docker/bb",
                                                   "scripts": "scripts/m/show.sh", "n_gpus": "1", "args": "",
                                                   "tags": ["pyt"], "owner": "t", "training_precision": ""}]))
    (root / "scripts" / "m" / "show.sh").write_text(SHOW)


def build(pytester: pytest.Pytester, context: dict) -> dict:
    write_package(pytester.path)
    result = pytester.runpytest_subprocess("--mad-tags", "pyt", "--mad-gpus", "none", "--mad-build-only",
                                           f"--mad-context={json.dumps(context)}", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    text = (pytester.path / "build_manifest.json").read_text()
    assert SECRET not in text
    return json.loads(text)


def shown(pytester: pytest.Pytester) -> dict[str, str]:
    log = (pytester.path / "mad_logs" / "deployed.run.log").read_text()
    names = ("FROM_DEPLOY", "FROM_BUILD_CTX", "SHARED", "HF_TOKEN", "MAD_DEPLOYMENT_TYPE")
    return dict(line.split("=", 1) for line in log.splitlines() if line.split("=", 1)[0] in names)


@pytest.mark.slurm
def test_a_slurm_manifest_runs_as_slurm_jobs_from_the_manifest_alone(pytester, slurm_cluster, busybox_image):
    manifest = build(pytester, {"gpu_vendor": "NONE", "slurm": {"partition": "debug", "time": "00:10:00"},
                                "env_vars": {"FROM_DEPLOY": "deploy"},
                                "docker_env_vars": {"FROM_BUILD_CTX": "build", "SHARED": "build"}})
    assert manifest["deployment_config"]["target"] == "slurm"
    result = pytester.runpytest_subprocess("--mad-manifest", "build_manifest.json", "--mad-gpus", "none",
                                           "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    row = (pytester.path / "perf.csv").read_text().splitlines()[-1]
    assert row.startswith("deployed,") and ",slurm," in row and ",SUCCESS," in row
    assert shown(pytester) == {"FROM_DEPLOY": "deploy", "FROM_BUILD_CTX": "build", "SHARED": "build",
                               "HF_TOKEN": "", "MAD_DEPLOYMENT_TYPE": "slurm"}


def test_the_runs_own_context_wins_and_supplies_the_secrets(pytester, docker_engine, busybox_image):
    manifest = build(pytester, {"gpu_vendor": "NONE", "env_vars": {"FROM_DEPLOY": "deploy"},
                                "docker_env_vars": {"FROM_BUILD_CTX": "build", "SHARED": "build",
                                                    "HF_TOKEN": SECRET}})
    assert manifest["context"]["docker_env_vars"]["HF_TOKEN"] == "<redacted>"
    run_context = {"docker_env_vars": {"SHARED": "run", "HF_TOKEN": SECRET}}
    result = pytester.runpytest_subprocess("--mad-manifest", "build_manifest.json", "--mad-gpus", "none",
                                           f"--mad-context={json.dumps(run_context)}", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    assert ",local," in (pytester.path / "perf.csv").read_text().splitlines()[-1]
    assert shown(pytester) == {"FROM_DEPLOY": "deploy", "FROM_BUILD_CTX": "build", "SHARED": "run",
                               "HF_TOKEN": SECRET, "MAD_DEPLOYMENT_TYPE": ""}


def test_a_manifest_secret_is_never_restored(pytester, docker_engine, busybox_image):
    build(pytester, {"gpu_vendor": "NONE", "docker_env_vars": {"HF_TOKEN": SECRET}})
    result = pytester.runpytest_subprocess("--mad-manifest", "build_manifest.json", "--mad-gpus", "none",
                                           "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    assert shown(pytester)["HF_TOKEN"] == ""  # neither the secret nor the "<redacted>" placeholder
