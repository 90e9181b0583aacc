"""Image builds against the real engine: reuse by content hash, rebuilds, failures, build-once."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.images.build import HASH_LABEL, build_spec, ensure_image
from tests.docker.fakes import amd_context, make_card
from tests.infra.containers import run_output

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = """# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}
ARG BASE_DOCKER=mad-test/busybox:latest
FROM $BASE_DOCKER
ARG MAD_SYSTEM_GPU_ARCHITECTURE
COPY . /ctx/
"""


class Package:
    """A one-card package in a temp dir with a unique card name (image names are engine-global)."""

    def __init__(self, root: Path, client) -> None:
        self.root, self.client = root, client
        self.name = f"imgtest-{uuid.uuid4().hex[:10]}"
        self.dockerfile = root / "docker" / "m.ubuntu.amd.Dockerfile"
        self.dockerfile.parent.mkdir(parents=True)
        self.dockerfile.write_text(DOCKERFILE)
        (root / "docker" / "extra.txt").write_text("one")
        self.card = make_card(name=self.name, dockerfile="docker/m")

    def ensure(self, context=None, *, card=None, clean_cache=False, lock_dir=None):
        return ensure_image(card or self.card, self.dockerfile, package_root=self.root,
                            context=context or amd_context(), clean_cache=clean_cache,
                            log_dir=self.root / "logs", lock_dir=lock_dir, client=self.client)

    def remove_images(self) -> None:
        for image in self.client.images.list(filters={"reference": f"ci-{self.name}*"}):
            for tag in image.tags:
                self.client.images.remove(tag, force=True)


@pytest.fixture
def package(tmp_path, docker_engine, busybox_image):
    pkg = Package(tmp_path / "pkg", docker_engine)
    yield pkg
    pkg.remove_images()


def test_build_then_reuse_by_content_hash(package):
    first = package.ensure()
    assert not first.reused and first.image_id.startswith("sha256:")
    assert first.docker_sha == package.client.images.get("mad-test/busybox:latest").id  # the base image
    assert first.name == f"ci-{package.name}_m.ubuntu.amd"
    assert first.base_docker == "mad-test/busybox:latest" and first.dockerfile == "docker/m.ubuntu.amd.Dockerfile"
    assert "# BuildKit (the default builder)" in Path(first.build_log).read_text()
    image = package.client.images.get(first.name)
    assert image.labels[HASH_LABEL] == build_spec(package.card, package.dockerfile, package_root=package.root,
                                                  context=amd_context()).content_hash
    second = package.ensure()
    assert second.reused and second.image_id == first.image_id and second.build_duration == 0.0


def test_context_file_change_rebuilds(package):
    first = package.ensure()
    (package.root / "docker" / "extra.txt").write_text("two")
    second = package.ensure()
    assert not second.reused and second.image_id != first.image_id
    assert package.ensure().reused


def test_declared_build_arg_change_rebuilds_but_undeclared_does_not(package):
    package.ensure()
    assert package.ensure(amd_context(docker_build_arg={"UNUSED_ARG": "x"})).reused
    assert not package.ensure(amd_context(gpu_architecture="gfx90a")).reused


def test_dockerignored_files_do_not_count(package):
    (package.root / "docker" / ".dockerignore").write_text("scratch/\n")
    (package.root / "docker" / "scratch").mkdir()
    (package.root / "docker" / "scratch" / "notes.txt").write_text("a")
    package.ensure()
    (package.root / "docker" / "scratch" / "notes.txt").write_text("b")
    assert package.ensure().reused


def test_dockercontext_is_the_package_root(package):
    (package.root / "scripts").mkdir()
    (package.root / "scripts" / "run.sh").write_text("echo 1\n")
    card = make_card(name=package.name, dockerfile="docker/m", dockercontext=".")
    first = package.ensure(card=card)
    out = run_output(package.client, first.name, ["cat", "/ctx/scripts/run.sh"])
    assert out == b"echo 1\n"
    (package.root / "scripts" / "run.sh").write_text("echo 2\n")
    assert not package.ensure(card=card).reused


def test_clean_cache_rebuilds_once_per_session(package, tmp_path):
    first = package.ensure()
    locks = tmp_path / "locks"
    rebuilt = package.ensure(clean_cache=True, lock_dir=locks)
    assert not rebuilt.reused
    log = Path(rebuilt.build_log).read_text()
    copy_step = re.search(r"^(#\d+) \[\d/\d\] COPY \. /ctx/", log, re.MULTILINE)
    assert copy_step and f"{copy_step.group(1)} CACHED" not in log  # BuildKit marks cached steps so
    assert package.ensure(clean_cache=True, lock_dir=locks).reused  # another worker of the session
    assert first.name == rebuilt.name


def test_build_failure_names_the_step_and_the_log(package):
    package.dockerfile.write_text(DOCKERFILE + "RUN echo about-to-break && exit 3\n")
    with pytest.raises(MadError) as err:
        package.ensure()
    text = str(err.value)
    assert re.search(r"failed at #\d+ \[\d/\d\] RUN echo about-to-break && exit 3", text)
    assert "about-to-break" in text and "exit code: 3" in text
    assert f"{package.name}_m.ubuntu.amd.build.log" in text and package.name in text


def test_missing_base_image_says_it_cannot_be_pulled(package):
    context = amd_context(docker_build_arg={"BASE_DOCKER": "mad-test/no-such-base:1"})
    with pytest.raises(MadError) as err:
        package.ensure(context)
    text = str(err.value)
    assert "base image mad-test/no-such-base:1 is not available locally and cannot be pulled" in text
    assert "BASE_DOCKER" in text


RACER = """
import json, sys
from pathlib import Path
from pytest_madengine.images.build import ensure_image
from tests.docker.fakes import amd_context, make_card
from tests.infra.containers import run_output
root, name, locks = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
ref = ensure_image(make_card(name=name, dockerfile="docker/m"), root / "docker/m.ubuntu.amd.Dockerfile",
                   package_root=root, context=amd_context(), clean_cache=False, log_dir=root / "logs",
                   lock_dir=locks)
print(json.dumps({"reused": ref.reused, "id": ref.image_id}))
"""


def test_three_processes_build_the_image_once(package, tmp_path):
    locks = tmp_path / "locks"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(package.root), package.name, str(locks)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["reused"] for r in results) == [False, True, True]
    assert len({r["id"] for r in results}) == 1


def test_dockerfile_outside_the_context_dir(package):
    (package.root / "ctx").mkdir()
    (package.root / "ctx" / "payload.txt").write_text("payload")
    card = make_card(name=package.name, dockerfile="docker/m", dockercontext="ctx")
    ref = package.ensure(card=card)
    out = run_output(package.client, ref.name, ["cat", "/ctx/payload.txt"])
    assert out == b"payload"
    assert package.ensure(card=card).reused


def test_context_build_args_win_over_the_card(package):
    card = make_card(name=package.name, dockerfile="docker/m",
                     docker_build_arg={"BASE_DOCKER": "mad-test/no-such-base:2"})
    ref = package.ensure(amd_context(docker_build_arg={"BASE_DOCKER": "mad-test/busybox:latest"}), card=card)
    assert ref.base_docker == "mad-test/busybox:latest"


def test_mad_secrets_are_build_args_and_never_written(package, monkeypatch):
    import hashlib

    from tests.infra.containers import run_output

    canary = "mad-secret-canary-5d1e"
    monkeypatch.setenv("MAD_SECRETS_HFTOKEN", canary)
    package.dockerfile.write_text(DOCKERFILE + "ARG MAD_SECRETS_HFTOKEN\n"
                                  "RUN echo \"$MAD_SECRETS_HFTOKEN\" | md5sum | cut -c1-32 > /secret-md5\n")
    image = package.ensure()
    seen = run_output(package.client, image.name, ["cat", "/secret-md5"]).decode().strip()
    assert seen == hashlib.md5(f"{canary}\n".encode()).hexdigest()  # madengine: MAD_SECRETS_* are build args
    assert canary not in Path(image.build_log).read_text() and canary not in image.build_command
    assert "MAD_SECRETS_HFTOKEN=<redacted>" in image.build_command
    assert canary not in str(package.client.images.get(image.name).labels)
    monkeypatch.setenv("MAD_SECRETS_HFTOKEN", "rotated")  # a changed secret needs no rebuild
    assert package.ensure().reused
