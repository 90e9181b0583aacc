"""Top-level ``env_vars``, ``deploy`` and what a build manifest gives the run's context."""
from __future__ import annotations

import json

import pytest

from pytest_madengine.context import build_context
from pytest_madengine.errors import MadError
from pytest_madengine.host import HostFacts
from pytest_madengine.images.manifest_context import manifest_context
from pytest_madengine.targets.builtins import infer_target
from pytest_madengine.targets.slurm.config import resolve
from pytest_madengine.targets.slurm.multi import sbatch_options
from pytest_madengine.workload.known_keys import context_unknown
from tests.slurm.helpers import make_card


def context(data: dict, base: dict | None = None):
    return build_context(context_text=json.dumps(data), host=HostFacts(), base=base)


def test_env_vars_are_a_known_key_and_take_in_the_slurm_alias():
    made = context({"env_vars": {"NCCL_DEBUG": "INFO", "N": 8}, "slurm": {"env_vars": {"A": "1", "N": "2"}}})
    assert made.env_vars == {"A": "1", "NCCL_DEBUG": "INFO", "N": "8"}  # the top level wins a clash
    assert "env_vars" not in made.data["slurm"]
    assert context_unknown(made.data, "ctx") == []


@pytest.mark.parametrize("bad, message", [
    ({"env_vars": {"NOT A NAME": "x"}}, "'NOT A NAME' is not an environment variable name"),
    ({"env_vars": ["A=1"]}, "context key 'env_vars' is a list, not a dict"),
    ({"env_vars": {"A": {"nested": 1}}}, "'A' must be a string"),
])
def test_bad_env_vars_name_the_key_and_the_fix(bad, message):
    with pytest.raises(MadError, match=message) as info:
        context(bad)
    assert "Fix:" in str(info.value) or info.value.fix


@pytest.mark.parametrize("data, expected", [
    ({"deploy": "slurm"}, "slurm"), ({"deploy": "kubernetes"}, "k8s"), ({"deploy": "docker"}, "local"),
    ({}, "local"), ({"deploy": "slurm", "k8s": {}}, "k8s"),
])
def test_deploy_names_the_target_when_no_section_does(data, expected):
    assert infer_target(None, data) == expected


def test_top_level_env_vars_are_exported_by_the_job_script_but_not_the_miopen_dir():
    config = resolve(make_card("m", "run.sh"), {"env_vars": {"NCCL_DEBUG": "INFO", "MIOPEN_USER_DB_PATH": "/x"}},
                     timeout=60)
    assert config.script_env == {"NCCL_DEBUG": "INFO"}
    assert config.job_env == {}  # the containers get them from the context, where docker_env_vars still win


def test_slurm_multi_sbatch_options_follow_the_slurm_section():
    card = make_card("m", "run.slurm", distributed={"launcher": "slurm_multi"})
    config = resolve(card, {"slurm": {"partition": "gpu", "nodes": 3, "gpus_per_node": 8, "time": "04:00:00",
                                      "exclusive": True, "reservation": "r1", "nodelist": "n[1-3]"}}, timeout=None)
    assert sbatch_options(config) == ["--nodes=3", "--ntasks=3", "--partition=gpu", "--time=04:00:00",
                                      "--reservation=r1", "--nodelist=n[1-3]", "--gpus-per-node=8", "--exclusive"]


def write_manifest(tmp_path, **sections):
    path = tmp_path / "build_manifest.json"
    path.write_text(json.dumps({"built_images": {}, "built_models": {}, **sections}))
    return path


def test_manifest_layer_restores_madengines_keys_without_build_host_facts_or_secrets(tmp_path):
    path = write_manifest(
        tmp_path,
        context={"gpu_vendor": "AMD", "gpu_architecture": "gfx942", "tools": [{"name": "rocprof"}],
                 "docker_env_vars": {"MAD_SYSTEM_GPU_ARCHITECTURE": "gfx942", "KEEP": "1", "HF_TOKEN": "<redacted>"},
                 "encapsulate_script": "wrap.sh", "docker_mounts": {"/data": "/mnt"}},
        deployment_config={"target": "slurm", "slurm": {"partition": "gpu"}, "env_vars": {"E": "1"},
                           "distributed": {"launcher": "torchrun"}, "debug": False})
    assert manifest_context(path) == {
        "tools": [{"name": "rocprof"}], "docker_env_vars": {"KEEP": "1"}, "encapsulate_script": "wrap.sh",
        "slurm": {"partition": "gpu"}, "env_vars": {"E": "1"}, "distributed": {"launcher": "torchrun"},
        "deploy": "slurm"}


def test_the_runs_context_wins_over_the_manifest_key_by_key(tmp_path):
    base = manifest_context(write_manifest(tmp_path, context={"docker_env_vars": {"A": "build", "B": "build"}},
                                           deployment_config={"target": "k8s", "env_vars": {"E": "build"}}))
    made = context({"docker_env_vars": {"A": "run"}, "env_vars": {"E": "run"}}, base=base)
    assert made.docker_env_vars["A"] == "run" and made.docker_env_vars["B"] == "build"
    assert made.env_vars == {"E": "run"} and infer_target(None, made.data) == "k8s"


def test_a_broken_manifest_names_the_file(tmp_path):
    path = write_manifest(tmp_path, deployment_config=["slurm"])
    with pytest.raises(MadError, match="deployment_config") as info:
        manifest_context(path)
    assert str(path) in str(info.value)
