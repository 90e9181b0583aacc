"""Build specs without the engine: build args, base image, content hash inputs."""
from __future__ import annotations

from pytest_madengine.images.build import base_image, build_args_for, build_spec
from tests.docker.fakes import amd_context, make_card

TEXT = "# CONTEXT {}\nARG BASE_DOCKER=rocm/pytorch:latest\nFROM ${BASE_DOCKER}\nARG MAD_SYSTEM_GPU_ARCHITECTURE\n"


def spec(root, **card_fields):
    card = make_card(name="m", dockerfile="docker/m", **card_fields)
    return build_spec(card, root / "docker" / "m.amd.Dockerfile", package_root=root, context=amd_context(),
                      log_dir=root / "mad_logs")


def package(tmp_path):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "m.amd.Dockerfile").write_text(TEXT)
    (tmp_path / "docker" / "file.txt").write_text("x")
    return tmp_path


def test_only_declared_and_proxy_build_args_are_passed():
    card = make_card(docker_build_arg={"CARD_ARG": "1", "BASE_DOCKER": "card/base"})
    context = amd_context(docker_build_arg={"http_proxy": "http://p", "UNDECLARED": "2"})
    assert build_args_for(TEXT, card, context) == {
        "BASE_DOCKER": "card/base", "MAD_SYSTEM_GPU_ARCHITECTURE": "gfx942", "http_proxy": "http://p"}


def test_base_image_resolves_arg_defaults_and_overrides():
    assert base_image(TEXT, {}) == "rocm/pytorch:latest"
    assert base_image(TEXT, {"BASE_DOCKER": "mad-test/busybox:latest"}) == "mad-test/busybox:latest"
    assert base_image("FROM --platform=linux/amd64 ubuntu:22.04 AS build\n", {}) == "ubuntu:22.04"


def test_hash_ignores_vcs_caches_and_our_outputs_but_not_sources(tmp_path):
    root = package(tmp_path)
    (root / "scripts").mkdir()
    first = spec(root, dockercontext=".")
    for junk in (".git/HEAD", "mad_logs/x.log", "perf.csv", "scripts/__pycache__/a.pyc"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("changes every run")
    assert spec(root, dockercontext=".").content_hash == first.content_hash
    (root / "docker" / "file.txt").write_text("y")
    assert spec(root, dockercontext=".").content_hash != first.content_hash


def test_default_context_is_the_dockerfile_dir(tmp_path):
    root = package(tmp_path)
    (root / "outside.txt").write_text("not in the context")
    result = spec(root)
    assert result.context_dir == root / "docker" and "outside.txt" not in result.files
    assert set(result.files) == {"file.txt", "m.amd.Dockerfile"}
