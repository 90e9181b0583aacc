"""Push, pull and login against the real htpasswd registry on 127.0.0.1 through the Docker SDK.

Every test uses a fresh SDK client and an empty DOCKER_CONFIG, so neither an earlier login of this
process nor the machine's own `docker login` can lend credentials to a test that must have none.
"""
from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.images.registry import Credentials, ensure_local_image, image_exists, login, push_image

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture
def client(docker_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import docker

    for name in ("MAD_DOCKERHUB_USER", "MAD_DOCKERHUB_PASSWORD", "MAD_DOCKERHUB_REPO"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "docker-config").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    fresh = docker.from_env(timeout=120)
    yield fresh
    fresh.close()


@pytest.fixture
def tiny_image(client: Any, busybox_image: str) -> Iterator[str]:
    """A unique one-layer image on top of the busybox base; removed (all its tags) afterwards."""
    name = f"mad-h4-{uuid.uuid4().hex[:10]}"
    dockerfile = f"FROM {busybox_image}\nRUN echo {name} > /marker\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{name}:latest", rm=True)
    yield f"{name}:latest"
    import docker

    found = {image.id for pattern in ("*", "*/*", "*/*/*")
             for image in client.images.list(filters={"reference": f"{pattern}{name}*"})}
    for image_id in found:
        try:
            client.images.remove(image_id, force=True)
        except docker.errors.ImageNotFound:
            pass


def package_with(tmp_path: Path, credentials: dict | None) -> Path:
    root = tmp_path / "package"
    root.mkdir(parents=True)
    if credentials is not None:
        (root / "credential.json").write_text(json.dumps(credentials))
    return root


def good_creds(registry: Any) -> dict:
    return {registry.host: {"username": registry.user, "password": registry.password}}


def assert_clean(error: MadError, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in error.message and secret not in repr(error)


def test_push_then_pull_after_local_delete(client: Any, registry: Any, tiny_image: str, tmp_path: Path) -> None:
    root = package_with(tmp_path, good_creds(registry))
    original_id = client.images.get(tiny_image).id
    reference = push_image(client, tiny_image, registry.host, root)
    assert reference == f"{registry.host}/{tiny_image}"
    client.images.remove(reference)
    client.images.remove(tiny_image)
    assert not image_exists(client, reference)

    import docker

    puller = docker.from_env()  # a client that never logged in: the pull brings its own auth
    assert ensure_local_image(puller, reference, registry.host, root) == reference
    assert puller.images.get(reference).id == original_id
    # present now: no second pull, even without any credentials
    assert ensure_local_image(puller, reference, None, package_with(tmp_path / "other", None)) == reference


def test_push_with_repository_and_explicit_target(client: Any, registry: Any, tiny_image: str,
                                                  tmp_path: Path) -> None:
    root = package_with(tmp_path, good_creds(registry))
    name = tiny_image.split(":")[0]
    assert push_image(client, tiny_image, registry.host, root, repo="team/mad") == f"{registry.host}/team/mad:{name}"
    target = f"{registry.host}/batch/{name}:v7"
    assert push_image(client, tiny_image, registry.host, root, repo=target) == target
    assert push_image(client, tiny_image, registry.host, root, target=target) == target
    client.images.remove(target)
    assert ensure_local_image(client, target, registry.host, root) == target


def test_wrong_password_is_a_clear_error_without_the_password(client: Any, registry: Any, tiny_image: str,
                                                              tmp_path: Path) -> None:
    wrong = f"canary-wrong-{uuid.uuid4().hex}"
    root = package_with(tmp_path, {registry.host: {"username": registry.user, "password": wrong}})
    with pytest.raises(MadError) as info:
        push_image(client, tiny_image, registry.host, root)
    message = info.value.message
    assert "refused" in message and repr(registry.user) in message
    assert f"credential.json key '{registry.host}'" in message
    assert_clean(info.value, wrong, registry.password)
    with pytest.raises(MadError) as info:
        login(client, Credentials(registry.user, wrong, registry.host))
    assert "refused" in info.value.message
    assert_clean(info.value, wrong)


def test_missing_credentials_name_the_key_to_add(client: Any, registry: Any, tiny_image: str,
                                                 tmp_path: Path) -> None:
    root = package_with(tmp_path, {"localhost:1": {"username": "x", "password": "y"}})
    with pytest.raises(MadError) as info:
        push_image(client, tiny_image, registry.host, root)
    message = info.value.message
    assert "none were found" in message
    assert f'"{registry.host}"' in message and "credential.json" in message
    assert "MAD_DOCKERHUB_USER" in message and "MAD_DOCKERHUB_PASSWORD" in message


def test_pull_errors(client: Any, registry: Any, tiny_image: str, tmp_path: Path) -> None:
    good = package_with(tmp_path / "good", good_creds(registry))
    reference = push_image(client, tiny_image, registry.host, good)
    client.images.remove(reference)
    import docker

    fresh = docker.from_env()
    with pytest.raises(MadError) as info:  # no credentials at all
        ensure_local_image(fresh, reference, registry.host, package_with(tmp_path / "none", None))
    assert "none were found" in info.value.message and f'"{registry.host}"' in info.value.message

    wrong = f"canary-wrong-{uuid.uuid4().hex}"
    bad = package_with(tmp_path / "bad", {registry.host: {"username": registry.user, "password": wrong}})
    with pytest.raises(MadError) as info:
        ensure_local_image(fresh, reference, registry.host, bad)
    assert "refused" in info.value.message
    assert_clean(info.value, wrong)

    missing = f"{registry.host}/does-not-exist-{uuid.uuid4().hex[:6]}:latest"
    with pytest.raises(MadError) as info:
        ensure_local_image(fresh, missing, registry.host, good)
    assert f"not local and not pullable from {registry.host}" in info.value.message
    assert "manifest unknown" in info.value.message or "not found" in info.value.message
    assert_clean(info.value, registry.password)

    with pytest.raises(MadError) as info:  # nothing listens there
        ensure_local_image(fresh, "localhost:1/nothing:latest", None, good)
    assert "not local and not pullable from localhost:1" in info.value.message
