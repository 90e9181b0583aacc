"""Clone a card's ``url`` into its model dir (madengine clones it and copies the scripts in).

The clone runs on the host with an argv list and no terminal prompt, so a private repository
fails at once instead of hanging. With a cache dir, each URL is cloned once per session (under a
file lock, so xdist workers share it) and every run gets a local copy of that clone. Credentials
embedded in a URL never reach an error message or a log.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..cards import ModelCard
from ..errors import MadError
from ..fileio import locked

CLONE_TIMEOUT = 600


def redact(url: str) -> str:
    """``https://user:token@host/x`` → ``https://***@host/x``."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", url)


def clone_into(card: ModelCard, dest: Path, *, cache_dir: Path | None) -> str:
    """Clone ``card.url`` into ``dest`` (fresh); return its HEAD commit."""
    if cache_dir is None:
        _clone(card, card.url, dest)
    else:
        cached = _cached_clone(card, cache_dir)
        _clone(card, str(cached), dest, local=True)
    return _git(card, ["rev-parse", "HEAD"], cwd=dest).strip()


def _cached_clone(card: ModelCard, cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(card.url.encode()).hexdigest()[:16]
    clone = cache_dir / key
    with locked(cache_dir / f"{key}.lock"):
        if not (clone / ".git").is_dir():
            shutil.rmtree(clone, ignore_errors=True)  # a half clone of a crashed worker
            _clone(card, card.url, clone)
    return clone


def _clone(card: ModelCard, url: str, dest: Path, *, local: bool = False) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    options = ["--local", "--no-hardlinks"] if local else []
    _git(card, ["clone", "--quiet", *options, "--", url, str(dest)])
    if local:  # the copy's origin is the cache; scripts that fetch or pull need the real one
        _git(card, ["remote", "set-url", "origin", card.url], cwd=dest)


def _git(card: ModelCard, args: list[str], cwd: Path | None = None) -> str:
    where = f"{card.source}: card {card.name!r}, field 'url'"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true"}
    try:
        done = subprocess.run(["git", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=CLONE_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise MadError("the card has a url to clone but git is not installed on this host", where=where,
                       fix="install git (apt-get install git), or run the card without its url") from None
    except subprocess.TimeoutExpired:
        raise MadError(f"git {args[0]} of {redact(card.url)} took over {CLONE_TIMEOUT} s", where=where,
                       fix="check the network or the repository's size") from None
    if done.returncode != 0:
        detail = redact(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        raise MadError(f"git {args[0]} of {redact(card.url)} failed: {detail}", where=where,
                       fix="check the url; a private repository needs a git credential helper or "
                           "~/.git-credentials on this host (never a token in models.json)")
    return done.stdout


def head_commit(directory: Path) -> str:
    """The commit checked out in ``directory`` ('' when it is not a git work tree or git is missing)."""
    try:
        done = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], check=False, capture_output=True,
                              text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
