"""Dockerfile resolution by # CONTEXT header and madengine's image names."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.images.dockerfiles import image_name, resolve_dockerfiles
from tests.docker.fakes import RUNNABLE, load_cards, make_card

AMD = {"gpu_vendor": "AMD", "guest_os": "UBUNTU"}


def write(root: Path, name: str, header: str | None, body: str = "FROM scratch\n") -> Path:
    path = root / "docker" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((f"{header}\n" if header is not None else "") + body)
    return path


@pytest.fixture
def card():
    return make_card(name="fam/model", dockerfile="docker/m")


def test_keeps_the_candidate_whose_header_matches(tmp_path, card):
    amd = write(tmp_path, "m.ubuntu.amd.Dockerfile", "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}")
    write(tmp_path, "m.ubuntu.nvidia.Dockerfile", "# CONTEXT {'gpu_vendor': 'NVIDIA', 'guest_os': 'UBUNTU'}")
    assert resolve_dockerfiles(card, tmp_path, AMD) == [amd]


def test_values_compare_case_insensitively(tmp_path, card):
    amd = write(tmp_path, "m.ubuntu.amd.Dockerfile", "# CONTEXT {'gpu_vendor': 'amd'}")
    assert resolve_dockerfiles(card, tmp_path, {"gpu_vendor": "AMD"}) == [amd]


def test_header_keys_missing_from_the_context_do_not_filter(tmp_path, card):
    amd = write(tmp_path, "m.centos.amd.Dockerfile", "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'CENTOS'}")
    assert resolve_dockerfiles(card, tmp_path, {"gpu_vendor": "AMD"}) == [amd]


def test_several_survivors_are_all_returned_sorted(tmp_path, card):
    b = write(tmp_path, "m.b.amd.Dockerfile", "# CONTEXT {'gpu_vendor': 'AMD'}")
    a = write(tmp_path, "m.a.amd.Dockerfile", "# CONTEXT {'gpu_vendor': 'AMD'}")
    assert resolve_dockerfiles(card, tmp_path, AMD) == [a, b]


def test_header_may_follow_other_lines_and_other_prefixes_are_ignored(tmp_path, card):
    path = write(tmp_path, "m.amd.Dockerfile", "# syntax=docker/dockerfile:1\n# CONTEXT {'gpu_vendor': 'AMD'}")
    write(tmp_path, "mm.amd.Dockerfile", None)  # prefix "m." must not match "mm."
    write(tmp_path, "m.amd.Dockerfile.bak", None)
    assert resolve_dockerfiles(card, tmp_path, AMD) == [path]


def test_header_past_the_first_lines_is_not_seen(tmp_path, card):
    write(tmp_path, "m.amd.Dockerfile", "\n" * 12 + "# CONTEXT {'gpu_vendor': 'AMD'}")
    with pytest.raises(MadError, match="has no '# CONTEXT"):
        resolve_dockerfiles(card, tmp_path, AMD)


def test_no_candidate_names_what_was_looked_for(tmp_path, card):
    with pytest.raises(MadError) as err:
        resolve_dockerfiles(card, tmp_path, AMD)
    assert "docker/m.*Dockerfile" in str(err.value) and "'fam/model'" in str(err.value)


def test_candidate_without_header_is_reported_not_dropped(tmp_path, card):
    write(tmp_path, "m.ubuntu.amd.Dockerfile", "# CONTEXT {'gpu_vendor': 'AMD'}")
    write(tmp_path, "m.ubuntu.rocm.Dockerfile", None)
    with pytest.raises(MadError, match=r"m\.ubuntu\.rocm\.Dockerfile has no '# CONTEXT"):
        resolve_dockerfiles(card, tmp_path, AMD)


@pytest.mark.parametrize("header", ["# CONTEXT {'gpu_vendor': AMD}", "# CONTEXT ['AMD']",
                                    "# CONTEXT {'a': __import__('os')}"])
def test_malformed_header_is_an_error_naming_the_file(tmp_path, card, header):
    write(tmp_path, "m.amd.Dockerfile", header)
    with pytest.raises(MadError) as err:
        resolve_dockerfiles(card, tmp_path, AMD)
    assert "m.amd.Dockerfile" in str(err.value) and "CONTEXT" in str(err.value)


def test_all_filtered_out_shows_headers_and_context(tmp_path, card):
    write(tmp_path, "m.ubuntu.nvidia.Dockerfile", "# CONTEXT {'gpu_vendor': 'NVIDIA'}")
    with pytest.raises(MadError) as err:
        resolve_dockerfiles(card, tmp_path, AMD)
    text = str(err.value)
    assert "{'gpu_vendor': 'AMD'}" in text and "m.ubuntu.nvidia.Dockerfile: {'gpu_vendor': 'NVIDIA'}" in text


def test_runnable_package_resolves_per_vendor():
    card = load_cards()["pass"]
    assert [p.name for p in resolve_dockerfiles(card, RUNNABLE, AMD)] == ["runnable.ubuntu.amd.Dockerfile"]
    nvidia = {"gpu_vendor": "NVIDIA", "guest_os": "UBUNTU"}
    assert [p.name for p in resolve_dockerfiles(card, RUNNABLE, nvidia)] == ["runnable.ubuntu.nvidia.Dockerfile"]


@pytest.mark.parametrize("name, dockerfile, expected", [
    ("dummy", "docker/dummy.ubuntu.amd.Dockerfile", "ci-dummy_dummy.ubuntu.amd"),
    ("vllm/Pyt_Wan2.1_inference", "x/pyt_vllm.ubuntu.AMD.Dockerfile", "ci-vllm_pyt_wan2.1_inference_pyt_vllm.ubuntu.amd"),
])
def test_image_name(name, dockerfile, expected):
    assert image_name(make_card(name=name), Path(dockerfile)) == expected
