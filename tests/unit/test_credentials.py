"""Credentials from credential.json and the environment; registry naming; no secret in messages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.images.registry import (
    Credentials,
    credential_key,
    find_credentials,
    registry_image_name,
    registry_of_image,
    scrub,
    split_image,
    split_registry,
)

SECRET = "canary-unit-7f3a9"
ENV = {"MAD_DOCKERHUB_USER": "envuser", "MAD_DOCKERHUB_PASSWORD": "envpass", "MAD_DOCKERHUB_REPO": "envorg/mad"}


def write_creds(root: Path, data: object) -> Path:
    path = root / "credential.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_repr_and_str_never_show_the_password() -> None:
    creds = Credentials(username="alice", password=SECRET, registry="localhost:5000")
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert "alice" in repr(creds)
    assert creds.auth_config() == {"username": "alice", "password": SECRET}


@pytest.mark.parametrize("registry, key", [
    ("localhost:5000", "localhost:5000"),
    ("http://localhost:5000/", "localhost:5000"),
    ("localhost:5000/team", "localhost:5000"),
    ("docker.io", "dockerhub"),
    ("docker.io/myorg", "dockerhub"),
    ("dockerhub", "dockerhub"),
    ("", "dockerhub"),
    ("registry.example.com", "registry.example.com"),
])
def test_credential_key(registry: str, key: str) -> None:
    assert credential_key(registry) == key


def test_split_registry_and_image() -> None:
    assert split_registry("https://localhost:5000/team/sub") == ("localhost:5000", "team/sub")
    assert split_registry("docker.io/myorg") == ("", "myorg")
    assert split_image("localhost:5000/a/b:v1") == ("localhost:5000/a/b", "v1")
    assert split_image("localhost:5000/a/b") == ("localhost:5000/a/b", "latest")
    assert split_image("b@sha256:abc") == ("b", "@sha256:abc")
    assert registry_of_image("localhost:5000/ci/x:latest") == "localhost:5000"
    assert registry_of_image("rocm/pytorch:latest") == ""
    assert registry_of_image("docker.io/rocm/pytorch") == ""
    assert registry_of_image("ci-dummy_dummy.ubuntu.amd") == ""


def test_file_entry_for_the_registry_host(tmp_path: Path) -> None:
    write_creds(tmp_path, {"localhost:5000": {"username": "alice", "password": SECRET, "repository": "team"},
                           "MAD_GITHUB": {"token": "unrelated entry of another shape"}})
    creds = find_credentials("localhost:5000", tmp_path, {})
    assert creds == Credentials("alice", SECRET, "localhost:5000", "team", "credential.json key 'localhost:5000'")
    # the host key also serves a registry given with a namespace or scheme
    assert find_credentials("http://localhost:5000/other", tmp_path, {}).username == "alice"
    assert find_credentials("localhost:6000", tmp_path, {}) is None


def test_full_registry_key_wins_over_host_key(tmp_path: Path) -> None:
    write_creds(tmp_path, {"localhost:5000": {"username": "host", "password": "p1"},
                           "localhost:5000/team": {"username": "team", "password": "p2"}})
    assert find_credentials("localhost:5000/team", tmp_path, {}).username == "team"
    assert find_credentials("localhost:5000", tmp_path, {}).username == "host"


def test_dockerhub_env_overrides_the_file(tmp_path: Path) -> None:
    write_creds(tmp_path, {"dockerhub": {"username": "fileuser", "password": "filepass"}})
    for registry in ("docker.io", "", "dockerhub"):
        creds = find_credentials(registry, tmp_path, ENV)
        assert (creds.username, creds.password, creds.repository) == ("envuser", "envpass", "envorg/mad")
        assert creds.registry == "dockerhub" and "MAD_DOCKERHUB_USER" in creds.origin
    assert find_credentials("docker.io", tmp_path, {}).username == "fileuser"
    # MAD_DOCKERHUB_REPO alone completes a file entry without repository
    only_repo = {"MAD_DOCKERHUB_REPO": "org/repo"}
    assert find_credentials("docker.io", tmp_path, only_repo).repository == "org/repo"


def test_env_is_a_fallback_for_other_registries(tmp_path: Path) -> None:
    creds = find_credentials("localhost:5000", tmp_path, ENV)
    assert (creds.username, creds.registry) == ("envuser", "localhost:5000")
    write_creds(tmp_path, {"localhost:5000": {"username": "alice", "password": SECRET}})
    assert find_credentials("localhost:5000", tmp_path, ENV).username == "alice"  # the file wins here
    assert find_credentials("localhost:5000", tmp_path, {"MAD_DOCKERHUB_USER": "u"}) is not None  # file
    assert find_credentials("localhost:7000", tmp_path, {"MAD_DOCKERHUB_USER": "u"}) is None  # half env


def test_entry_without_password_names_key_and_field(tmp_path: Path) -> None:
    write_creds(tmp_path, {"localhost:5000": {"username": "alice"}})
    with pytest.raises(MadError) as info:
        find_credentials("localhost:5000", tmp_path, {})
    assert "'localhost:5000'" in info.value.message and "password" in info.value.message
    assert "credential.json" in info.value.message


def test_malformed_file_names_the_file_and_hides_its_content(tmp_path: Path) -> None:
    path = write_creds(tmp_path, '{"localhost:5000": {"username": "alice", "password": "' + SECRET + '"')
    with pytest.raises(MadError) as info:
        find_credentials("localhost:5000", tmp_path, {})
    assert str(path) in info.value.message and "invalid JSON at line 1" in info.value.message
    assert SECRET not in info.value.message
    write_creds(tmp_path, "[1, 2]")
    with pytest.raises(MadError, match="not an object"):
        find_credentials("localhost:5000", tmp_path, {})


@pytest.mark.parametrize("local, registry, repo, expected", [
    ("ci-dummy_dummy.ubuntu.amd", "localhost:5000", "", "localhost:5000/ci-dummy_dummy.ubuntu.amd:latest"),
    ("ci-dummy_dummy.ubuntu.amd", "localhost:5000/team", "", "localhost:5000/team/ci-dummy_dummy.ubuntu.amd:latest"),
    ("ci-dummy_dummy.ubuntu.amd", "localhost:5000", "mad", "localhost:5000/mad:ci-dummy_dummy.ubuntu.amd"),
    ("ci-Dummy:abc123", "localhost:5000", "", "localhost:5000/ci-dummy:abc123"),
    ("ci-dummy:abc123", "localhost:5000", "mad", "localhost:5000/mad:ci-dummy-abc123"),
    ("ci-dummy", "docker.io", "myorg/mad", "myorg/mad:ci-dummy"),
    ("ci-dummy", "docker.io/myorg", "", "myorg/ci-dummy:latest"),
])
def test_registry_image_name_follows_madengine(local: str, registry: str, repo: str, expected: str) -> None:
    assert registry_image_name(local, registry, repo) == expected


def test_dockerhub_push_without_repository_is_a_clear_error() -> None:
    with pytest.raises(MadError) as info:
        registry_image_name("ci-dummy", "docker.io")
    assert "MAD_DOCKERHUB_REPO" in info.value.message and "repository" in info.value.message


def test_scrub_removes_the_password() -> None:
    creds = Credentials("alice", SECRET, "localhost:5000")
    assert scrub(f"bad {SECRET} here", creds) == "bad *** here"
    assert scrub("text", None) == "text"
