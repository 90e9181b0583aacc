"""BuildKit builds through the docker CLI: RUN --mount=type=cache, the tools build context
(madengine's --build-context tools=docker/common), reuse by content hash, clear errors."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.images import buildkit
from pytest_madengine.images.build import build_spec, ensure_image
from tests.docker.fakes import amd_context, make_card
from tests.infra.containers import run_output

pytestmark = pytest.mark.docker
DOCKERFILE = """# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}
ARG BASE_DOCKER=mad-test/busybox:latest
FROM $BASE_DOCKER
ARG MAD_SYSTEM_GPU_ARCHITECTURE
RUN --mount=type=cache,target=/cache echo cached > /cache/stamp && cat /cache/stamp > /from-cache.txt
COPY --from=tools helper.sh /opt/tools/helper.sh
RUN --mount=type=bind,from=tools,target=/t cat /t/data/version.txt > /tools-version.txt
RUN echo "arch=${MAD_SYSTEM_GPU_ARCHITECTURE}" > /arch.txt
"""


@pytest.fixture
def package(tmp_path: Path, docker_engine, busybox_image):
    root = tmp_path / "pkg"
    (root / "docker" / "common" / "data").mkdir(parents=True)
    (root / "docker" / "bk.ubuntu.amd.Dockerfile").write_text(DOCKERFILE)
    (root / "docker" / "common" / "helper.sh").write_text("echo helper-from-tools\n")
    (root / "docker" / "common" / "data" / "version.txt").write_text("tools-1\n")
    card = make_card(name=f"bktest-{uuid.uuid4().hex[:10]}", dockerfile="docker/bk")
    yield root, card
    for image in docker_engine.images.list(filters={"reference": f"ci-{card.name}*"}):
        for tag in image.tags:
            docker_engine.images.remove(tag, force=True)


def ensure(root: Path, card, client, **kwargs):
    return ensure_image(card, root / "docker" / "bk.ubuntu.amd.Dockerfile", package_root=root,
                        context=amd_context(), clean_cache=False, log_dir=root / "logs", lock_dir=None,
                        client=client, **kwargs)


def test_detects_what_needs_buildkit() -> None:
    assert buildkit.buildkit_reason("FROM a\nRUN --mount=type=cache,target=/x true\n") == "RUN --mount"
    assert buildkit.buildkit_reason("# syntax=docker/dockerfile:1.4\nFROM a\n") == "# syntax=docker/dockerfile:1.4"
    assert buildkit.buildkit_reason("FROM a\nCOPY --from=tools x /x\n") == "the tools build context"
    assert buildkit.buildkit_reason("FROM a AS tools\nFROM b\nCOPY --from=tools x /x\n") == ""  # its own stage
    assert buildkit.buildkit_reason("FROM a\nRUN echo --mount=x\n") == "RUN --mount"
    assert buildkit.buildkit_reason("FROM a\nCOPY x /x\n") == ""
    text = buildkit.with_tools_stage("# c\nARG BASE=x\nFROM $BASE\nRUN true\n")
    assert text == "# c\nARG BASE=x\nFROM scratch AS tools\nCOPY .pytest-madengine-tools/ /\nFROM $BASE\nRUN true\n"


def test_cache_mount_and_tools_context_build_run_and_reuse(package, docker_engine) -> None:
    root, card = package
    first = ensure(root, card, docker_engine)
    assert not first.reused and first.image_id.startswith("sha256:")
    log = Path(first.build_log).read_text()
    assert "BuildKit (RUN --mount)" in log and "RUN --mount=type=cache" in log
    assert first.build_command.startswith("docker build --network=host --build-context tools=docker/common -t ")
    assert (first.gpu_vendor, first.docker_sha) == ("AMD", docker_engine.images.get("mad-test/busybox:latest").id)
    script = "cat /from-cache.txt /tools-version.txt /arch.txt; sh /opt/tools/helper.sh"
    out = run_output(docker_engine, first.name, ["sh", "-c", script])
    assert out.decode().split() == ["cached", "tools-1", "arch=gfx942", "helper-from-tools"]
    second = ensure(root, card, docker_engine)
    assert second.reused and second.image_id == first.image_id and second.build_duration == 0.0
    (root / "docker" / "common" / "data" / "version.txt").write_text("tools-2\n")  # tools are hashed too
    third = ensure(root, card, docker_engine)
    assert not third.reused and third.image_id != first.image_id


def test_target_arch_builds_a_suffixed_image_with_the_arch_build_arg(package, docker_engine) -> None:
    root, card = package
    image = ensure(root, card, docker_engine, target_arch="gfx90a")
    assert image.name.endswith("_gfx90a") and image.gpu_architecture == "gfx90a"
    assert run_output(docker_engine, image.name, ["cat", "/arch.txt"]).decode().strip() == "arch=gfx90a"


def test_failing_step_is_named_with_the_log(package, docker_engine) -> None:
    root, card = package
    (root / "docker" / "bk.ubuntu.amd.Dockerfile").write_text(
        "FROM mad-test/busybox:latest\nRUN --mount=type=cache,target=/c sh -c 'echo broken-step; exit 3'\n")
    with pytest.raises(MadError) as caught:
        ensure(root, card, docker_engine)
    message = caught.value.message
    assert "failed at #" in message and "RUN --mount=type=cache" in message and "broken-step" in message
    assert "Full build log:" in message and "Fix: fix the failing Dockerfile step" in message


def test_unreachable_syntax_frontend_is_explained(package, docker_engine) -> None:
    root, card = package
    (root / "docker" / "bk.ubuntu.amd.Dockerfile").write_text(
        "# syntax=docker/dockerfile:1.4\nFROM mad-test/busybox:latest\nRUN true\n")
    with pytest.raises(MadError, match=r"'# syntax=docker/dockerfile:1.4' frontend .* cannot be pulled.*"
                                       r"remove the '# syntax=' line"):
        ensure(root, card, docker_engine)


def test_tools_context_without_docker_common_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "docker").mkdir(parents=True)
    (root / "docker" / "t.Dockerfile").write_text("FROM scratch\nCOPY --from=tools a /a\n")
    with pytest.raises(MadError, match=r"reads the 'tools' build context .* no docker/common directory"):
        build_spec(make_card(name="t", dockerfile="docker/t"), root / "docker" / "t.Dockerfile", package_root=root,
                   context=amd_context())


def _build(root: Path, card, client, dockerfile: str):
    (root / "docker" / "bk.ubuntu.amd.Dockerfile").write_text(dockerfile)
    return ensure(root, card, client)


def test_every_dockerfile_builds_with_buildkit_copy_chmod_too(package, docker_engine) -> None:
    root, card = package
    (root / "docker" / "tool.sh").write_text("echo tool\n")
    image = _build(root, card, docker_engine, "FROM mad-test/busybox:latest\nCOPY --chmod=750 tool.sh /opt/tool.sh\n")
    assert "# BuildKit (the default builder)" in Path(image.build_log).read_text()
    out = run_output(docker_engine, image.name, ["stat", "-c", "%a", "/opt/tool.sh"])
    assert out.decode().strip() == "750"


def test_heredoc_builds_or_names_the_engine_limit(package, docker_engine) -> None:
    root, card = package
    heredoc = "FROM mad-test/busybox:latest\nRUN <<EOF\necho from-heredoc > /h.txt\nEOF\n"
    try:
        image = _build(root, card, docker_engine, heredoc)
    except MadError as error:  # Docker engines before 23 (this host's 20.10): the built-in frontend is 1.2
        assert docker_engine.version()["Version"].split(".")[0] < "23"
        assert "built-in Dockerfile frontend does not parse heredocs" in error.message
        assert "'# syntax=docker/dockerfile:1.4'" in error.message and "Docker 23" in error.message
        return
    assert run_output(docker_engine, image.name, ["cat", "/h.txt"]).decode().strip() == "from-heredoc"


def test_classic_builder_only_without_buildkit_said_once(package, docker_engine,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, card = package
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")
    monkeypatch.setenv("PATH", f"{root}:{__import__('os').environ['PATH']}")  # a fresh cache key
    with pytest.warns(buildkit.BuildKitWarning, match="classic builder: DOCKER_BUILDKIT=0 is set") as caught:
        first = _build(root, card, docker_engine, "FROM mad-test/busybox:latest\nRUN echo one > /one\n")
        _build(root, card, docker_engine, "FROM mad-test/busybox:latest\nRUN echo two > /two\n")
    assert len([w for w in caught if issubclass(w.category, buildkit.BuildKitWarning)]) == 1
    assert "Step 1/" in Path(first.build_log).read_text()  # the SDK's classic builder
