"""Cloning a card's url with real git repositories on disk."""
from __future__ import annotations

import base64
import functools
import os
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.credentials import CardCredential
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


# --- credentialed clones (a card's cred) ---------------------------------------------------------

PASSWORD = "canary-clone-9c41"


class _AuthRepoHandler(SimpleHTTPRequestHandler):
    """Serves a bare repository over git's dumb HTTP protocol behind Basic authentication."""

    expected = "Basic " + base64.b64encode(f"bot:{PASSWORD}".encode()).decode()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="repo"')
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def private_repo(tmp_path: Path):
    """http://127.0.0.1:<port>/repo.git, readable only as bot:<PASSWORD>; yields (url, head)."""
    head = make_repo(tmp_path / "src")
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "src"), str(served / "repo.git")], check=True)
    subprocess.run(["git", "-C", str(served / "repo.git"), "update-server-info"], check=True)
    handler = functools.partial(_AuthRepoHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/repo.git", head
    server.shutdown()
    server.server_close()


def test_cred_clones_a_private_https_repository_without_storing_the_secret(tmp_path: Path, private_repo,
                                                                          monkeypatch) -> None:
    url, head = private_repo
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a credential helper of the host must not store it
    (tmp_path / "home").mkdir()
    credential = CardCredential("MAD_GIT", {"username": "bot", "password": PASSWORD})
    card = make_card(name="m", url=url, cred="MAD_GIT")
    assert clone_into(card, tmp_path / "model", cache_dir=tmp_path / "cache", credential=credential) == head
    assert (tmp_path / "model" / "lib.txt").read_text() == "upstream v1"
    stored = [p for p in (tmp_path / "home", tmp_path / "model" / ".git", tmp_path / "cache") if p.exists()]
    for root in stored:
        for path in root.rglob("*"):
            assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path


def test_without_or_with_a_wrong_cred_the_clone_fails_clearly(tmp_path: Path, private_repo) -> None:
    url, _ = private_repo
    card = make_card(name="m", url=url)
    with pytest.raises(MadError, match="git clone of http://127.0.0.1:.* failed"):
        clone_into(card, tmp_path / "a", cache_dir=None)
    wrong = CardCredential("MAD_GIT", {"username": "bot", "password": "wrong-" + PASSWORD})
    with pytest.raises(MadError) as error:
        clone_into(card, tmp_path / "b", cache_dir=None, credential=wrong)
    assert PASSWORD not in error.value.message and "\n" not in error.value.message


def test_a_cred_without_the_keys_the_url_needs_is_refused(tmp_path: Path) -> None:
    card = make_card(name="m", url="https://example.invalid/x.git", cred="MAD_GIT")
    with pytest.raises(MadError, match="lacks password for cloning"):
        clone_into(card, tmp_path / "m", cache_dir=None, credential=CardCredential("MAD_GIT", {"username": "u"}))


def test_ssh_clone_runs_ssh_with_the_creds_user_and_key(tmp_path: Path, monkeypatch) -> None:
    """A stand-in ``ssh`` on PATH records its argv: the user and key file arrive as arguments of their own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "ssh-argv"
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\nexit 255\n')
    (bin_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    credential = CardCredential("MAD_GIT", {"username": "bot; rm -rf /", "ssh_key_file": "/keys/id ed"})
    card = make_card(name="m", url="ssh://git.example.invalid/org/repo.git", cred="MAD_GIT")
    with pytest.raises(MadError, match="git clone of ssh://git.example.invalid/org/repo.git failed"):
        clone_into(card, tmp_path / "m", cache_dir=None, credential=credential)
    argv = record.read_text().splitlines()
    assert argv[:4] == ["-l", "bot; rm -rf /", "-i", "/keys/id ed"]
    assert "IdentitiesOnly=yes" in argv and "git.example.invalid" in argv
