"""Cloning a card's url with real git repositories on disk."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.gitclone import clone_into, redact
from tests.docker.fakes import make_card


def make_repo(path: Path, text: str = "upstream v1") -> str:
    path.mkdir(parents=True)
    (path / "lib.txt").write_text(text)
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run([*git, "add", "lib.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def test_clone_without_cache(tmp_path: Path) -> None:
    head = make_repo(tmp_path / "upstream")
    card = make_card(name="m", url=str(tmp_path / "upstream"))
    assert clone_into(card, tmp_path / "model", cache_dir=None) == head
    assert (tmp_path / "model" / "lib.txt").read_text() == "upstream v1"


def test_cached_clone_is_made_once_and_copied(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream"
    head = make_repo(upstream)
    card = make_card(name="m", url=str(upstream))
    cache = tmp_path / "cache"
    assert clone_into(card, tmp_path / "run1", cache_dir=cache) == head
    (tmp_path / "run1" / "lib.txt").write_text("changed by run 1")
    subprocess.run(["rm", "-rf", str(upstream)], check=True)  # a second clone from upstream would fail now
    assert clone_into(card, tmp_path / "run2", cache_dir=cache) == head
    assert (tmp_path / "run2" / "lib.txt").read_text() == "upstream v1"  # a copy each, not shared
    origin = subprocess.run(["git", "-C", str(tmp_path / "run2"), "remote", "get-url", "origin"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert origin == str(upstream)


def test_failed_clone_is_one_paragraph_without_the_token(tmp_path: Path) -> None:
    card = make_card(name="m", url="https://someone:s3cret-token@127.0.0.1:9/no/repo.git")
    with pytest.raises(MadError) as error:
        clone_into(card, tmp_path / "model", cache_dir=tmp_path / "cache")
    message = error.value.message
    assert "field 'url'" in message and "git clone of https://***@127.0.0.1:9/no/repo.git failed" in message
    assert "s3cret" not in message and "\n" not in message


def test_redact_keeps_urls_without_credentials() -> None:
    assert redact("https://github.com/ROCm/x") == "https://github.com/ROCm/x"
    assert redact("https://tok@github.com/x") == "https://***@github.com/x"
