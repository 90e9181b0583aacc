"""build_manifest.json: writing, merging across processes, reading back; batch manifests; --mad-use-image.

The first part needs no Docker; the end-to-end part (build-only + push, then run from the manifest in
another directory) uses the real engine and the real htpasswd registry.
"""
from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.errors import MadError
from pytest_madengine.images.manifest import (
    BatchEntry,
    ManifestWriter,
    load_batch_manifest,
    load_manifest,
    use_image_for,
)
from pytest_madengine.records import ImageRef


def card(name: str = "dummy", directory: str | None = None, **extra: object) -> ModelCard:
    raw = {"name": name, "dockerfile": "docker/dummy", "scripts": "scripts/dummy/run.sh",
           "n_gpus": "1", "tags": ["dummies"], "args": "--a 1", "owner": "me", "custom_key": {"x": 1}}
    raw.update(extra)
    return ModelCard.from_dict(raw, source="models.json" if directory is None else
                               f"scripts/{directory}/models.json", directory=directory)


def image(name: str, **fields: object) -> ImageRef:
    values: dict[str, object] = {
        "dockerfile": "docker/dummy.ubuntu.amd.Dockerfile", "base_docker": "mad-test/busybox:latest",
        "docker_sha": "sha256:" + "ab" * 32, "build_duration": 1.5,
        "registry_image": f"localhost:5000/{name}:latest", "build_log": "/x/y.log", "reused": False,
        "build_command": f"docker build --network=host -t {name} -f docker/dummy.ubuntu.amd.Dockerfile /pkg/docker",
        "gpu_vendor": "AMD", "gpu_architecture": "gfx942", "image_id": "sha256:" + "cd" * 32}
    values.update(fields)
    return ImageRef(name=name, **values)  # type: ignore[arg-type]


# ---- writer + reader -----------------------------------------------------------------------------

def test_written_manifest_has_madengine_shape(tmp_path: Path) -> None:
    path = tmp_path / "build_manifest.json"
    writer = ManifestWriter(path, {"gpu_vendor": "AMD", "docker_env_vars": {"HF_TOKEN": "tok-123", "A": "1"}},
                            "localhost:5000")
    writer.add(card(), image("ci-dummy_dummy.ubuntu.amd"))
    writer.add(card("model1", "dummy2", cred="MAD_GITHUB"), image("ci-dummy2_model1_dummy.ubuntu.amd"))
    assert writer.write() == path
    data = json.loads(path.read_text())
    assert list(data) == sorted(data)  # deterministic key order
    assert set(data) >= {"built_images", "built_models", "context", "credentials_required", "registry", "summary"}
    built = data["built_images"]["ci-dummy_dummy.ubuntu.amd"]
    assert built == {"docker_image": "ci-dummy_dummy.ubuntu.amd", "model": "dummy", "registry": "localhost:5000",
                     "dockerfile": "docker/dummy.ubuntu.amd.Dockerfile", "base_docker": "mad-test/busybox:latest",
                     "docker_sha": "sha256:" + "ab" * 32, "build_duration": 1.5,
                     "registry_image": "localhost:5000/ci-dummy_dummy.ubuntu.amd:latest",
                     "build_command": "docker build --network=host -t ci-dummy_dummy.ubuntu.amd -f "
                                      "docker/dummy.ubuntu.amd.Dockerfile /pkg/docker",
                     "log_file": "/x/y.log", "gpu_vendor": "AMD", "gpu_architecture": "gfx942",
                     "image_id": "sha256:" + "cd" * 32}
    assert "deployment_config" not in data  # a plain local context: madengine leaves it out too
    model = data["built_models"]["ci-dummy2_model1_dummy.ubuntu.amd"]
    assert model["name"] == "dummy2/model1" and model["scripts"] == "scripts/dummy/run.sh"
    assert model["custom_key"] == {"x": 1} and model["docker_image"] == "ci-dummy2_model1_dummy.ubuntu.amd"
    assert data["credentials_required"] == ["MAD_GITHUB"]
    assert data["registry"] == "localhost:5000"
    assert data["context"]["docker_env_vars"] == {"HF_TOKEN": "<redacted>", "A": "1"}
    assert "tok-123" not in path.read_text()
    assert data["summary"]["successful_builds"] == ["dummy", "dummy2/model1"]
    assert data["summary"]["total_build_time"] == 3.0
    assert not list(tmp_path.glob("*.tmp"))


def test_roundtrip_rebuilds_the_same_cards(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    originals = [card(), card("model1", "dummy2"), card("p", args="--b 2").with_params((("batch", "8"),))]
    writer = ManifestWriter(path, {"gpu_vendor": "NVIDIA"}, None)
    for index, original in enumerate(originals):
        writer.add(original, image(f"ci-img{index}", registry_image=""))
    writer.write()
    manifest = load_manifest(path)
    by_name = {c.name: c for c in manifest.cards()}
    for original in originals:
        loaded = by_name[original.name]
        assert loaded.directory == original.directory and loaded.params == original.params
        assert loaded.args == original.args and loaded.full_args == original.full_args
        assert loaded.raw == original.raw and loaded.test_id == original.test_id
        assert loaded.n_gpus == original.n_gpus and loaded.tags == original.tags
    assert manifest.image_for("dummy2/model1") == ImageRef(
        name="ci-img1", dockerfile="docker/dummy.ubuntu.amd.Dockerfile", base_docker="mad-test/busybox:latest",
        docker_sha="sha256:" + "ab" * 32, build_duration=1.5, build_log="/x/y.log", image_id="sha256:" + "cd" * 32,
        build_command="docker build --network=host -t ci-img1 -f docker/dummy.ubuntu.amd.Dockerfile /pkg/docker",
        gpu_vendor="AMD", gpu_architecture="gfx942")
    assert manifest.image_for("p[batch=8]").name == "ci-img2"
    assert manifest.context == {"gpu_vendor": "NVIDIA"} and manifest.registry == ""
    with pytest.raises(MadError, match="'nope' is not in the manifest"):
        manifest.image_for("nope")


def test_two_cards_on_one_image_both_survive(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    writer = ManifestWriter(path, {}, None)
    writer.add(card("a"), image("shared"))
    writer.add(card("b"), image("shared"))
    writer.add(card("a"), image("shared"))  # re-adding the same card replaces, never duplicates
    writer.write()
    manifest = load_manifest(path)
    assert sorted(c.name for c in manifest.cards()) == ["a", "b"]
    assert {manifest.image_for(n).name for n in ("a", "b")} == {"shared"}


def test_reads_a_madengine_written_manifest(tmp_path: Path) -> None:
    path = tmp_path / "build_manifest.json"
    path.write_text(json.dumps({
        "built_images": {"ci-dummy2_model1_dummy.ubuntu.amd": {
            "docker_image": "ci-dummy2_model1_dummy.ubuntu.amd", "dockerfile": "docker/dummy.ubuntu.amd.Dockerfile",
            "base_docker": "rocm/pytorch", "docker_sha": "", "build_duration": 12.3,
            "build_command": "docker build  --network=host --build-context tools=docker/common "
                             "-t ci-dummy2_model1_dummy.ubuntu.amd --pull -f docker/dummy.ubuntu.amd.Dockerfile  ./docker",
            "log_file": "dummy2_model1_dummy.ubuntu.amd.build.live.log", "gpu_vendor": "AMD",
            "gpu_architecture": "gfx942",
            "registry_image": "localhost:5000/ci-dummy2_model1_dummy.ubuntu.amd", "registry": "localhost:5000"}},
        "built_models": {"ci-dummy2_model1_dummy.ubuntu.amd": {
            "name": "dummy2/model1", "dockerfile": "docker/dummy", "scripts": "scripts/dummy2/run.sh",
            "n_gpus": "1", "owner": "", "training_precision": "", "tags": ["dummies"], "args": ""}},
        "context": {"gpu_vendor": "AMD"}, "credentials_required": [],
        "deployment_config": {"target": "slurm", "slurm": {"partition": "gpu", "nodes": 2},
                              "distributed": {"launcher": "torchrun"}, "env_vars": {}, "debug": False},
        "summary": {"successful_builds": [], "failed_builds": [], "total_build_time": 12.3}}))
    manifest = load_manifest(path)
    [only] = manifest.cards()
    assert (only.name, only.directory, only.short_name) == ("dummy2/model1", "dummy2", "model1")
    ref = manifest.image_for("dummy2/model1", "gfx942")
    assert ref.registry_image == "localhost:5000/ci-dummy2_model1_dummy.ubuntu.amd" and ref.build_duration == 12.3
    assert (ref.gpu_vendor, ref.gpu_architecture, ref.build_log) == (
        "AMD", "gfx942", "dummy2_model1_dummy.ubuntu.amd.build.live.log")


# What madengine's run side reads from a manifest (run_orchestrator / container_runner / deployment):
MADENGINE_IMAGE_KEYS = {"docker_image", "dockerfile", "base_docker", "docker_sha", "build_duration",
                        "build_command", "log_file", "gpu_vendor"}
MADENGINE_CONTEXT_KEYS = {"docker_env_vars", "docker_build_arg", "gpu_vendor", "guest_os"}


def test_ours_has_every_key_madengines_reader_uses(tmp_path: Path) -> None:
    path = tmp_path / "build_manifest.json"
    context = {"gpu_vendor": "AMD", "guest_os": "UBUNTU", "docker_env_vars": {"MAD_PASSWORD": "pw"},
               "docker_build_arg": {}, "slurm": {"partition": "gpu"}, "distributed": {"launcher": "torchrun"},
               "env_vars": {"MIOPEN_USER_DB_PATH": "/x", "NCCL_DEBUG": "INFO"}}
    writer = ManifestWriter(path, context, None)
    writer.add(card(), image("ci-dummy_dummy.ubuntu.amd"))
    writer.write()
    data = json.loads(path.read_text())
    for key, entry in data["built_images"].items():
        assert MADENGINE_IMAGE_KEYS <= set(entry) and entry["docker_image"] == key
        assert key in data["built_models"]  # madengine pairs images and models by this key
    assert MADENGINE_CONTEXT_KEYS <= set(data["context"]) and "pw" not in path.read_text()
    assert data["deployment_config"] == {"target": "slurm", "slurm": {"partition": "gpu"},
                                         "distributed": {"launcher": "torchrun"},
                                         "env_vars": {"NCCL_DEBUG": "INFO"}, "debug": False}


def test_one_entry_per_target_arch_and_the_hosts_is_run(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    writer = ManifestWriter(path, {}, None)
    for arch in ("gfx942", "gfx90a"):
        writer.add(card(), image(f"ci-dummy_dummy.ubuntu.amd_{arch}", gpu_architecture=arch))
    writer.write()
    data = json.loads(path.read_text())
    assert sorted(data["built_images"]) == ["ci-dummy_dummy.ubuntu.amd_gfx90a", "ci-dummy_dummy.ubuntu.amd_gfx942"]
    assert sorted(data["built_models"]) == sorted(data["built_images"])
    manifest = load_manifest(path)
    assert [c.name for c in manifest.cards()] == ["dummy"]  # one test, not one per image
    assert manifest.image_for("dummy", "gfx90a").name == "ci-dummy_dummy.ubuntu.amd_gfx90a"
    with pytest.raises(MadError, match=r"images of 'dummy' for gfx90a, gfx942 only, not for .* gfx1100.*"
                                       r"--mad-target-archs gfx1100"):
        manifest.image_for("dummy", "gfx1100")


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    ("{not json", "invalid JSON at line 1"),
    ("[]", "holds a list"),
    ('{"built_images": {}}', "no 'built_models' object"),
    ('{"built_images": {}, "built_models": {"x": {"name": "a", "dockerfile": "d", "scripts": "s"}}}',
     "names image 'x', which built_images lacks"),
    ('{"built_images": {"x": {}}, "built_models": {"x": {"name": "a", "scripts": "s"}}}',
     "missing required field(s) dockerfile"),
])
def test_bad_manifest_is_a_clear_error_naming_the_file(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(MadError) as info:
        load_manifest(path)
    assert str(path) in info.value.message and expected in info.value.message


def _write_from_process(path: str, session_id: str, index: int) -> None:
    writer = ManifestWriter(Path(path), {"gpu_vendor": "AMD"}, "localhost:5000", session_id=session_id)
    for round_ in range(3):
        writer.add(card(f"m{index}_{round_}"), image(f"ci-m{index}_{round_}"))
        writer.write()


def test_concurrent_writers_of_one_session_merge(tmp_path: Path) -> None:
    path = tmp_path / "build_manifest.json"
    path.write_text(json.dumps({"built_images": {"old": {}}, "built_models": {}, "session_id": "previous"}))
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_write_from_process, args=(str(path), "s1", i)) for i in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    manifest = load_manifest(path)
    assert sorted(c.name for c in manifest.cards()) == sorted(f"m{i}_{r}" for i in range(4) for r in range(3))
    assert "old" not in json.loads(path.read_text())["built_images"]  # another session's file is replaced


def test_without_session_id_a_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    first = ManifestWriter(path, {}, None, session_id="")
    first.add(card("a"), image("ia"))
    first.write()
    second = ManifestWriter(path, {}, None, session_id="")
    second.add(card("b"), image("ib"))
    second.write()
    assert [c.name for c in load_manifest(path).cards()] == ["b"]


def test_xdist_workers_of_one_run_merge_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.json"
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "run-1")
    for name in ("a", "b"):
        writer = ManifestWriter(path, {}, None)
        writer.add(card(name), image(f"i{name}"))
        writer.write()
    assert [c.name for c in load_manifest(path).cards()] == ["a", "b"]
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "run-2")
    writer = ManifestWriter(path, {}, None)
    writer.add(card("c"), image("ic"))
    writer.write()
    assert [c.name for c in load_manifest(path).cards()] == ["c"]


def test_failures_are_summarised_until_the_model_builds(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    writer = ManifestWriter(path, {}, None, session_id="s")
    writer.add_failure(card("a"), "build failed at step 2")
    writer.write()
    assert json.loads(path.read_text())["summary"]["failed_builds"] == [{"model": "a", "error": "build failed at step 2"}]
    writer.add(card("a"), image("ia"))
    writer.write()
    assert json.loads(path.read_text())["summary"]["failed_builds"] == []


# ---- batch manifests -----------------------------------------------------------------------------

def test_batch_manifest_entries(tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps([
        {"model_name": "dummy", "build_new": True},
        {"model_name": "dummy2/model1", "build_new": False, "registry": "localhost:5000",
         "registry_image": "localhost:5000/ci/old:latest"},
        {"model_name": "other", "build_new": True, "registry": "localhost:5000", "registry_image": ""},
    ]))
    assert load_batch_manifest(path) == [
        BatchEntry("dummy", True),
        BatchEntry("dummy2/model1", False, "localhost:5000", "localhost:5000/ci/old:latest"),
        BatchEntry("other", True, "localhost:5000", ""),
    ]


@pytest.mark.parametrize("entries, expected", [
    ({"model_name": "a"}, "holds a dict, not a list"),
    (["a"], "entry 0: the entry is a str"),
    ([{"build_new": True}], "entry 0: field 'model_name'"),
    ([{"model_name": "a", "build_new": True}, {"model_name": "b", "build_new": "yes"}],
     "entry 1 (b): field 'build_new' is 'yes'"),
    ([{"model_name": "a", "build_new": False}], "entry 0 (a): field 'registry_image' is empty"),
    ([{"model_name": "a", "build_new": True, "registry": 5000}], "entry 0 (a): field 'registry' is a int"),
    ([{"model_name": "a", "build_new": True}, {"model_name": "a", "build_new": True}], "listed twice"),
])
def test_bad_batch_manifest_names_entry_and_field(tmp_path: Path, entries: object, expected: str) -> None:
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(MadError) as info:
        load_batch_manifest(path)
    assert str(path) in info.value.message and expected in info.value.message


# ---- --mad-use-image -----------------------------------------------------------------------------

def test_use_image_given_and_auto() -> None:
    assert use_image_for(card(), "localhost:5000/team/img:v1") == ImageRef(name="localhost:5000/team/img:v1")
    auto = card(env_vars={"DOCKER_IMAGE_NAME": "rocm/vllm:latest"})
    assert use_image_for(auto, "auto").name == "rocm/vllm:latest"
    with pytest.raises(MadError) as info:
        use_image_for(card(), "auto")
    assert "'dummy'" in info.value.message and "env_vars.DOCKER_IMAGE_NAME" in info.value.message
    with pytest.raises(MadError, match="not a valid image reference"):
        use_image_for(card(), "bad image; rm -rf /")


# ---- end to end: build-only + push, then run from the manifest elsewhere --------------------------

AMD_CPU = "--mad-context={'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}"
RUN_SCRIPT = "#!/bin/bash\necho \"running $MAD_MODEL_NAME\"\necho 'performance: 3.5 samples_per_second'\n"


@pytest.fixture
def hermetic_docker(docker_engine: Any, busybox_image: str, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """No credentials from the environment or the machine's `docker login`; a fresh SDK client."""
    import docker

    for name in ("MAD_DOCKERHUB_USER", "MAD_DOCKERHUB_PASSWORD", "MAD_DOCKERHUB_REPO"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    client = docker.from_env(timeout=120)
    yield client
    client.close()


@dataclass
class E2EPackage:
    root: Path
    names: list[str]  # unique model names: image names never collide with other tests

    def tags(self, client: Any) -> set[str]:
        """Every local tag naming one of this package's models (local names and registry copies)."""
        return {tag for image in client.images.list() for tag in image.tags
                if any(name in tag for name in self.names)}

    def remove_images(self, client: Any) -> None:
        import docker

        for tag in self.tags(client):  # by tag, never by id: a tag may point at a shared base image
            try:
                client.images.remove(tag)
            except docker.errors.ImageNotFound:
                pass


@pytest.fixture
def e2e_package(pytester: pytest.Pytester, hermetic_docker: Any, busybox_image: str) -> Iterator[E2EPackage]:
    tag = uuid.uuid4().hex[:8]
    names = [f"h4a{tag}", f"h4b{tag}", f"h4c{tag}"]
    root = pytester.path / "pkg"
    (root / "docker").mkdir(parents=True)
    (root / "docker" / "tiny.ubuntu.amd.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\n"
        f"ARG BASE_DOCKER={busybox_image}\nFROM $BASE_DOCKER\nRUN echo {tag} > /marker\n")
    (root / "scripts").mkdir()
    (root / "scripts" / "run.sh").write_text(RUN_SCRIPT)
    cards = [{"name": n, "dockerfile": "docker/tiny", "scripts": "scripts/run.sh", "n_gpus": "1", "owner": "",
              "training_precision": "", "tags": ["tiny"], "args": "", "extra_field": n} for n in names]
    (root / "models.json").write_text(json.dumps(cards))
    package = E2EPackage(root, names)
    yield package
    package.remove_images(hermetic_docker)


def credentials(package: E2EPackage, registry: Any, password: str | None = None) -> None:
    (package.root / "credential.json").write_text(json.dumps(
        {registry.host: {"username": registry.user, "password": password or registry.password}}))


def in_dir(pytester: pytest.Pytester, name: str) -> Path:
    path = pytester.path / name
    path.mkdir(exist_ok=True)
    return path


def run_in(pytester: pytest.Pytester, directory: Path, *args: str) -> pytest.RunResult:
    """A real pytest process (no SDK client or login cache shared with earlier runs) in ``directory``."""
    with contextlib.chdir(directory):
        return pytester.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(directory),
                            *args, timeout=300)


def all_text(pytester: pytest.Pytester, *results: pytest.RunResult) -> dict[str, str]:
    """Every file the sessions wrote (not the package's credential.json) and their output."""
    texts = {str(p): p.read_text(errors="replace") for p in pytester.path.rglob("*")
             if p.is_file() and p.name != "credential.json"}
    for index, result in enumerate(results):
        texts[f"output {index}"] = result.stdout.str() + result.stderr.str()
    return texts


def test_build_push_then_run_pulled_images_from_another_directory(
        pytester: pytest.Pytester, e2e_package: E2EPackage, registry: Any, hermetic_docker: Any) -> None:
    client, (a, b, c) = hermetic_docker, e2e_package.names
    credentials(e2e_package, registry)
    build_dir = in_dir(pytester, "build")
    built = run_in(pytester, build_dir, "--mad-package", str(e2e_package.root), "--mad-tags", f"{a},{b}",
                   "--mad-build-only", "--mad-registry", registry.host, AMD_CPU, "--mad-gpus", "none",
                   "--junitxml", str(build_dir / "build.xml"), "--mad-log-dir", str(build_dir / "logs"))
    assert built.ret == 0, built.stdout.str() + built.stderr.str()
    built.assert_outcomes(passed=2)
    junit = (build_dir / "build.xml").read_text()
    assert f'name="{a}"' in junit and f'name="{b}"' in junit and c not in junit

    manifest_path = build_dir / "build_manifest.json"
    data = json.loads(manifest_path.read_text())
    assert sorted(data["built_images"]) == [f"ci-{a}_tiny.ubuntu.amd", f"ci-{b}_tiny.ubuntu.amd"]
    for name in (a, b):
        local = f"ci-{name}_tiny.ubuntu.amd"
        entry = data["built_images"][local]
        assert entry["registry_image"] == f"{registry.host}/{local}:latest"
        assert entry["image_id"] == client.images.get(local).id
        assert entry["docker_sha"] == client.images.get("mad-test/busybox:latest").id  # the base image digest
        assert entry["log_file"].endswith(f"{local}.build.log") and entry["gpu_vendor"] == "AMD"
        assert entry["build_command"].startswith("docker build --network=host -t " + local)
        assert entry["dockerfile"] == "docker/tiny.ubuntu.amd.Dockerfile"
        assert entry["base_docker"] == "mad-test/busybox:latest" and entry["build_duration"] >= 0
        assert entry["registry"] == registry.host and entry["model"] == name
        card_entry = data["built_models"][local]
        assert card_entry["name"] == name and card_entry["extra_field"] == name  # unknown keys kept
        assert card_entry["scripts"] == "scripts/run.sh"
    assert data["registry"] == registry.host and data["context"]["gpu_vendor"] == "AMD"
    assert data["summary"]["successful_builds"] == sorted([a, b])
    assert data["credentials_required"] == []

    e2e_package.remove_images(client)  # neither the local name nor the registry tag is left
    assert not e2e_package.tags(client)

    run_dir = in_dir(pytester, "elsewhere")
    narrowed = run_in(pytester, run_dir, "--mad-package", str(e2e_package.root), "--mad-manifest",
                      str(manifest_path), "--mad-tags", a, "--collect-only", "-q")
    assert narrowed.ret == 0 and f"::{a}" in narrowed.stdout.str() and f"::{b}" not in narrowed.stdout.str()
    ran = run_in(pytester, run_dir, "--mad-package", str(e2e_package.root), "--mad-manifest", str(manifest_path),
                 "--mad-gpus", "none", "--junitxml", str(run_dir / "run.xml"), "--mad-log-dir", str(run_dir / "logs"))
    assert ran.ret == 0, ran.stdout.str() + ran.stderr.str()
    ran.assert_outcomes(passed=2)
    for name in (a, b):
        assert client.images.get(f"{registry.host}/ci-{name}_tiny.ubuntu.amd:latest")  # pulled
    scanned = all_text(pytester, built, narrowed, ran)
    for must_exist in (manifest_path, build_dir / "build.xml", run_dir / "run.xml", run_dir / "perf.csv"):
        assert str(must_exist) in scanned  # the scan below covers every output, not an empty set
    assert any("/logs/" in where for where in scanned)
    leaks = [where for where, text in scanned.items() if registry.password in text]
    assert not leaks, f"the canary password leaked into {leaks}"


def test_image_neither_local_nor_pullable_fails_clearly(
        pytester: pytest.Pytester, e2e_package: E2EPackage, registry: Any) -> None:
    a = e2e_package.names[0]
    credentials(e2e_package, registry)
    missing = f"{registry.host}/missing-{a}:latest"
    path = pytester.path / "manifest.json"
    writer = ManifestWriter(path, {"gpu_vendor": "AMD"}, registry.host)
    writer.add(ModelCard.from_dict({"name": a, "dockerfile": "docker/tiny", "scripts": "scripts/run.sh"},
                                   source="models.json"),
               ImageRef(name=f"ci-{a}_gone", registry_image=missing))
    writer.write()
    result = run_in(pytester, pytester.path, "--mad-package", str(e2e_package.root), "--mad-manifest", str(path),
                    "--mad-gpus", "none")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, outcomes  # the lead reports a setup error
    output = result.stdout.str()
    assert f"not local and not pullable from {registry.host}" in output and missing in output
    assert "Traceback" not in output


@pytest.mark.parametrize("problem", ["wrong password", "missing credentials"])
def test_registry_auth_problems_fail_the_build_items_clearly(
        pytester: pytest.Pytester, e2e_package: E2EPackage, registry: Any, problem: str) -> None:
    a = e2e_package.names[0]
    wrong = f"canary-wrong-{uuid.uuid4().hex}"
    if problem == "wrong password":
        credentials(e2e_package, registry, password=wrong)
    result = run_in(pytester, pytester.path, "--mad-package", str(e2e_package.root), "--mad-tags", a,
                    "--mad-build-only", "--mad-registry", registry.host, AMD_CPU, "--mad-gpus", "none",
                    "--junitxml", str(pytester.path / "junit.xml"))
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    if problem == "wrong password":
        assert "refused for user" in output and f"credential.json key '{registry.host}'" in output
    else:
        assert "none were found" in output and f'"{registry.host}"' in output and "MAD_DOCKERHUB_USER" in output
    assert "Traceback" not in output
    leaks = [where for where, text in all_text(pytester, result).items() if wrong in text or registry.password in text]
    assert not leaks, f"a password leaked into {leaks}"


def test_batch_manifest_builds_only_build_new_and_references_the_rest(
        pytester: pytest.Pytester, e2e_package: E2EPackage, registry: Any, hermetic_docker: Any,
        busybox_image: str) -> None:
    from pytest_madengine.images.registry import push_image

    client, (a, b, _) = hermetic_docker, e2e_package.names
    credentials(e2e_package, registry)
    client.images.build(fileobj=io.BytesIO(f"FROM {busybox_image}\nRUN echo old > /old\n".encode()),
                                       tag=f"old-{b}:v1", rm=True)
    existing = push_image(client, f"old-{b}:v1", registry.host, e2e_package.root, target=f"{registry.host}/old/{b}:v1")
    batch = pytester.path / "batch.json"
    batch.write_text(json.dumps([{"model_name": a, "build_new": True},
                                 {"model_name": b, "build_new": False, "registry": registry.host,
                                  "registry_image": existing}]))
    built = run_in(pytester, pytester.path, "--mad-package", str(e2e_package.root), "--mad-batch-manifest", str(batch),
                   "--mad-build-only", "--mad-registry", registry.host, AMD_CPU, "--mad-gpus", "none")
    assert built.ret == 0, built.stdout.str() + built.stderr.str()
    built.assert_outcomes(passed=2)  # c is not in the batch: not selected
    data = json.loads((pytester.path / "build_manifest.json").read_text())
    assert data["built_images"][f"ci-{a}_tiny.ubuntu.amd"]["registry_image"] == \
        f"{registry.host}/ci-{a}_tiny.ubuntu.amd:latest"
    assert data["built_images"][existing]["registry_image"] == existing
    assert {m["name"] for m in data["built_models"].values()} == {a, b}
    assert client.images.list(filters={"reference": f"ci-{a}_tiny.ubuntu.amd"})
    assert not client.images.list(filters={"reference": f"ci-{b}_*"})  # b was not built

    e2e_package.remove_images(client)  # also the old image's tags: they name model b
    assert not e2e_package.tags(client)
    run_dir = in_dir(pytester, "run")
    ran = run_in(pytester, run_dir, "--mad-package", str(e2e_package.root), "--mad-manifest",
                 str(pytester.path / "build_manifest.json"), "--mad-gpus", "none")
    assert ran.ret == 0, ran.stdout.str() + ran.stderr.str()
    ran.assert_outcomes(passed=2)
    assert client.images.get(existing)  # pulled from the batch's registry_image


def test_build_only_under_xdist_writes_every_model(
        pytester: pytest.Pytester, e2e_package: E2EPackage, registry: Any) -> None:
    credentials(e2e_package, registry)
    result = run_in(pytester, pytester.path, "-n", "2", "--mad-package", str(e2e_package.root), "--mad-tags", "tiny",
                    "--mad-build-only", "--mad-registry", registry.host, AMD_CPU, "--mad-gpus", "none")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=3)
    manifest = load_manifest(pytester.path / "build_manifest.json")
    assert sorted(c.name for c in manifest.cards()) == sorted(e2e_package.names)
    assert all(manifest.image_for(n).registry_image.startswith(registry.host) for n in e2e_package.names)


def test_use_image_given_auto_and_missing(pytester: pytest.Pytester, e2e_package: E2EPackage, registry: Any,
                                          hermetic_docker: Any, busybox_image: str) -> None:
    from pytest_madengine.images.registry import push_image

    a, b, c = e2e_package.names
    credentials(e2e_package, registry)
    hermetic_docker.images.get(busybox_image).tag(f"base-{a}", "v1")
    pushed = push_image(hermetic_docker, f"base-{a}:v1", registry.host, e2e_package.root)
    hermetic_docker.images.remove(pushed)
    hermetic_docker.images.remove(f"base-{a}:v1")
    cards = json.loads((e2e_package.root / "models.json").read_text())
    cards[1]["env_vars"] = {"DOCKER_IMAGE_NAME": busybox_image}
    (e2e_package.root / "models.json").write_text(json.dumps(cards))
    common = ("--mad-package", str(e2e_package.root), "--mad-gpus", "none", AMD_CPU)

    given = run_in(pytester, pytester.path, *common, "--mad-tags", a, "--mad-use-image", pushed)
    assert given.ret == 0, given.stdout.str() + given.stderr.str()
    assert hermetic_docker.images.get(pushed)  # pulled with the package's credentials
    auto = run_in(pytester, pytester.path, *common, "--mad-tags", f"{b},{c}", "--mad-use-image", "auto")
    outcomes = auto.parseoutcomes()
    assert outcomes.get("passed") == 1 and outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, outcomes
    assert f"card {c!r}" in auto.stdout.str() and "env_vars.DOCKER_IMAGE_NAME" in auto.stdout.str()
    assert not list(hermetic_docker.images.list(filters={"reference": f"ci-{b}_*"}))  # nothing was built


def test_build_only_with_use_image_records_the_image_and_builds_nothing(
        pytester: pytest.Pytester, e2e_package: E2EPackage, hermetic_docker: Any, busybox_image: str) -> None:
    a = e2e_package.names[0]
    result = run_in(pytester, pytester.path, "--mad-package", str(e2e_package.root), "--mad-gpus", "none", AMD_CPU,
                    "--mad-tags", a, "--mad-build-only", "--mad-use-image", busybox_image)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    document = json.loads((pytester.path / "build_manifest.json").read_text())
    assert [entry["docker_image"] for entry in document["built_images"].values()] == [busybox_image]
    model = next(iter(document["built_models"].values()))
    assert model["env_vars"]["DOCKER_IMAGE_NAME"] == busybox_image  # as madengine's build --use-image writes it
    assert not list(hermetic_docker.images.list(filters={"reference": f"ci-{a}_*"}))  # nothing was built
    assert load_manifest(pytester.path / "build_manifest.json").image_for(a).name == busybox_image
