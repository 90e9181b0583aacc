"""madengine's in-container variables: build number, ROCM_PATH, host pass-through, card credentials."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.images.build import build_args_for, build_spec
from pytest_madengine.workload.credentials import card_credential, credential_env
from pytest_madengine.workload.environment import HOST_PASS_THROUGH, mad_environment
from pytest_madengine.workload.known_keys import cards_unknown
from tests.docker.fakes import FakeContext, amd_context, make_card

SECRET = "canary-cred-51d2"


def env_of(context: FakeContext, host_env: dict[str, str], **kwargs: object) -> dict[str, str]:
    return mad_environment(make_card(n_gpus="1"), context, (0,), devices_passed=True, host_env=host_env,
                           **kwargs)  # type: ignore[arg-type]


def test_jenkins_build_number_is_the_hosts_build_number_else_zero():
    assert env_of(amd_context(), {"BUILD_NUMBER": "77"})["JENKINS_BUILD_NUMBER"] == "77"
    assert env_of(amd_context(), {})["JENKINS_BUILD_NUMBER"] == "0"


def test_rocm_path_on_amd_is_the_images_own_else_opt_rocm():
    assert env_of(amd_context(), {})["ROCM_PATH"] == "/opt/rocm"
    assert env_of(amd_context(), {}, image_env={"ROCM_PATH": "/opt/rocm-6.3.1"})["ROCM_PATH"] == "/opt/rocm-6.3.1"
    given = amd_context(docker_env_vars={"ROCM_PATH": "/usr/local/rocm"})
    assert env_of(given, {})["ROCM_PATH"] == "/usr/local/rocm"  # the context wins
    assert "ROCM_PATH" not in env_of(FakeContext({"gpu_vendor": "NVIDIA"}), {})


def test_madengines_host_variables_pass_through_but_not_gpu_visibility():
    host = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "NCCL_DEBUG": "INFO", "NCCL_IB_HCA": "mlx5_0",
            "MIOPEN_USER_DB_PATH": "/tmp/miopen", "GLOO_SOCKET_IFNAME": "eth0", "HIP_VISIBLE_DEVICES": "5",
            "UNRELATED": "x"}
    env = env_of(amd_context(), host)
    assert {key: env[key] for key in ("MASTER_ADDR", "MASTER_PORT", "NCCL_DEBUG", "NCCL_IB_HCA",
                                      "MIOPEN_USER_DB_PATH", "GLOO_SOCKET_IFNAME")} == {
        "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "NCCL_DEBUG": "INFO", "NCCL_IB_HCA": "mlx5_0",
        "MIOPEN_USER_DB_PATH": "/tmp/miopen", "GLOO_SOCKET_IFNAME": "eth0"}
    assert env["HIP_VISIBLE_DEVICES"] == "0" and "UNRELATED" not in env
    assert env["RAY_EXPERIMENTAL_NOSET_HIP_VISIBLE_DEVICES"] == ""
    assert "MIOPEN_USER_DB_PATH" in HOST_PASS_THROUGH


def test_a_host_runner_replaces_the_computed_one():
    assert env_of(amd_context(), {})["MAD_MULTI_NODE_RUNNER"] == "torchrun --standalone --nproc_per_node=1"
    env = env_of(amd_context(), {"MAD_MULTI_NODE_RUNNER": "torchrun --nnodes=2"})
    assert env["MAD_MULTI_NODE_RUNNER"] == "torchrun --nnodes=2"


def write_credentials(root: Path, data: object) -> None:
    (root / "credential.json").write_text(json.dumps(data))


def test_card_credential_becomes_upper_cased_variables(tmp_path: Path):
    write_credentials(tmp_path, {"MAD_GITHUB": {"username": "bot", "password": SECRET, "token_x": "t"},
                                 "localhost:5000": {"username": "r", "password": "p"}})
    card = make_card(cred="MAD_GITHUB")
    assert credential_env(card, tmp_path) == {"MAD_GITHUB_USERNAME": "bot", "MAD_GITHUB_PASSWORD": SECRET,
                                              "MAD_GITHUB_TOKEN_X": "t"}
    assert SECRET not in repr(card_credential(card, tmp_path))
    assert credential_env(make_card(), tmp_path) == {}


@pytest.mark.parametrize("data, message", [
    (None, "the card needs credentials 'MAD_GITHUB' but credential.json does not exist"),
    ({"other": {"username": "u"}}, "credential.json has no entry 'MAD_GITHUB'"),
    ({"MAD_GITHUB": "token"}, "entry 'MAD_GITHUB' is a str, not an object"),
    ({"MAD_GITHUB": {"username": {"a": 1}}}, "entry 'MAD_GITHUB' has values that are not text: username"),
])
def test_unusable_credentials_name_the_card_and_the_fix(tmp_path: Path, data, message):
    if data is not None:
        write_credentials(tmp_path, data)
    with pytest.raises(MadError) as error:
        credential_env(make_card(cred="MAD_GITHUB"), tmp_path)
    assert message in error.value.message and "credential.json" in error.value.message
    assert "Fix:" in error.value.message or "fix" in error.value.message.lower()


def test_cred_is_a_known_card_key():
    assert cards_unknown([({"name": "m", "cred": "MAD_GITHUB"}, "models.json")]) == []


def test_credential_build_args_only_where_the_dockerfile_declares_them(tmp_path: Path):
    text = "ARG MAD_GITHUB_USERNAME\nFROM scratch\n"
    secrets = {"MAD_GITHUB_USERNAME": "bot", "MAD_GITHUB_PASSWORD": SECRET}
    args = build_args_for(text, make_card(), FakeContext({}), secrets)
    assert args["MAD_GITHUB_USERNAME"] == "bot" and "MAD_GITHUB_PASSWORD" not in args


def test_credential_build_args_reach_the_spec_but_not_its_hash(tmp_path: Path):
    (tmp_path / "docker").mkdir()
    dockerfile = tmp_path / "docker" / "m.Dockerfile"
    dockerfile.write_text("ARG MAD_GITHUB_PASSWORD\nFROM scratch\n")
    card = make_card(cred="MAD_GITHUB")
    write_credentials(tmp_path, {"MAD_GITHUB": {"username": "bot", "password": SECRET}})
    first = build_spec(card, dockerfile, package_root=tmp_path, context=FakeContext({}))
    assert first.build_args["MAD_GITHUB_PASSWORD"] == SECRET
    write_credentials(tmp_path, {"MAD_GITHUB": {"username": "bot", "password": "rotated-secret"}})
    second = build_spec(card, dockerfile, package_root=tmp_path, context=FakeContext({}))
    assert second.content_hash == first.content_hash  # the secret is not hashed into the image label
