"""build_manifest.json: writing, merging across processes, reading back; batch manifests; --mad-use-image.

The first part needs no Docker; the end-to-end part (build-only + push, then run from the manifest in
another directory) uses the real engine and the real htpasswd registry.
"""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.errors import MadError
from pytest_madengine.manifest import (
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
    values = dict(dockerfile="docker/dummy.ubuntu.amd.Dockerfile", base_docker="mad-test/busybox:latest",
                  docker_sha="sha256:" + "ab" * 32, build_duration=1.5,
                  registry_image=f"localhost:5000/{name}:latest", build_log="/x/y.log", reused=False)
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
                     "registry_image": "localhost:5000/ci-dummy_dummy.ubuntu.amd:latest"}
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
        docker_sha="sha256:" + "ab" * 32, build_duration=1.5)
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
            "build_command": "docker build ...", "log_file": "x.log",
            "registry_image": "localhost:5000/ci-dummy2_model1_dummy.ubuntu.amd", "registry": "localhost:5000"}},
        "built_models": {"ci-dummy2_model1_dummy.ubuntu.amd": {
            "name": "dummy2/model1", "dockerfile": "docker/dummy", "scripts": "scripts/dummy2/run.sh",
            "n_gpus": "1", "owner": "", "training_precision": "", "tags": ["dummies"], "args": ""}},
        "context": {"gpu_vendor": "AMD"}, "credentials_required": []}))
    manifest = load_manifest(path)
    [only] = manifest.cards()
    assert (only.name, only.directory, only.short_name) == ("dummy2/model1", "dummy2", "model1")
    ref = manifest.image_for("dummy2/model1")
    assert ref.registry_image == "localhost:5000/ci-dummy2_model1_dummy.ubuntu.amd" and ref.build_duration == 12.3


@pytest.mark.parametrize("content, expected", [
    (None, "does not exist"),
    ("{not json", "not valid JSON (line 1"),
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
    first = ManifestWriter(path, {}, None)
    first.add(card("a"), image("ia"))
    first.write()
    second = ManifestWriter(path, {}, None)
    second.add(card("b"), image("ib"))
    second.write()
    assert [c.name for c in load_manifest(path).cards()] == ["b"]


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
