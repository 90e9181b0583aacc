"""Clone a card's ``url`` into its model dir (madengine clones it and copies the scripts in).

The clone runs on the host with an argv list and no terminal prompt, so a private repository
fails at once instead of hanging. With a cache dir, each URL is cloned once per session (under a
file lock, so xdist workers share it) and every run gets a local copy of that clone. Credentials
embedded in a URL never reach an error message or a log.

A card's ``cred`` (``credentials``) clones as madengine does, without putting a secret on a command
line or into shell text: for an http(s) URL git asks a fixed askpass script that prints the username
or the password from the clone's environment, and the host's credential helpers are switched off
(``-c credential.helper=``) so nothing is stored; for an ssh URL ``GIT_SSH`` is a fixed wrapper running
``ssh -l <username> -i <ssh_key_file> -o IdentitiesOnly=yes`` with those two from the environment.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..cards import ModelCard
from ..errors import MadError
from ..fileio import locked
from .credentials import CardCredential

CLONE_TIMEOUT = 600
# Fixed helper scripts: the values come from the environment, never from the script text.
ASKPASS = """#!/bin/sh
case "$1" in
  [Uu]sername*) printf '%s\\n' "$MAD_GIT_USERNAME" ;;
  *) printf '%s\\n' "$MAD_GIT_PASSWORD" ;;
esac
"""
SSH_WRAPPER = """#!/bin/sh
exec ssh -l "$MAD_GIT_USERNAME" -i "$MAD_GIT_SSH_KEY" -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null \\
  -o StrictHostKeyChecking=no "$@"
"""


def redact(url: str) -> str:
    """``https://user:token@host/x`` → ``https://***@host/x``."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", url)


def clone_into(card: ModelCard, dest: Path, *, cache_dir: Path | None, credential: CardCredential | None = None) -> str:
    """Clone ``card.url`` into ``dest`` (fresh), with the card's credential if any; return its HEAD commit."""
    if cache_dir is None:
        _clone(card, card.url, dest, credential=credential)
    else:
        cached = _cached_clone(card, cache_dir, credential)
        _clone(card, str(cached), dest, local=True)
    return _git(card, ["rev-parse", "HEAD"], cwd=dest).strip()


def _cached_clone(card: ModelCard, cache_dir: Path, credential: CardCredential | None) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(card.url.encode()).hexdigest()[:16]
    clone = cache_dir / key
    with locked(cache_dir / f"{key}.lock"):
        if not (clone / ".git").is_dir():
            shutil.rmtree(clone, ignore_errors=True)  # a half clone of a crashed worker
            _clone(card, card.url, clone, credential=credential)
    return clone


def _clone(card: ModelCard, url: str, dest: Path, *, local: bool = False,
           credential: CardCredential | None = None) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    options = ["--local", "--no-hardlinks"] if local else []
    with _credential_env(card, url, credential) as (config, env):
        _git(card, [*config, "clone", "--quiet", *options, "--", url, str(dest)], extra_env=env,
             secrets=credential)
    if local:  # the copy's origin is the cache; scripts that fetch or pull need the real one
        _git(card, ["remote", "set-url", "origin", card.url], cwd=dest)


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


@contextlib.contextmanager
def _credential_env(card: ModelCard, url: str,
                    credential: CardCredential | None) -> Iterator[tuple[list[str], dict[str, str]]]:
    """git options and environment that answer the URL's login from ``credential`` (nothing without one)."""
    if credential is None:
        yield [], {}
        return
    http = _is_http(url)
    needed = ("username", "password") if http else ("username", "ssh_key_file")
    missing = [key for key in needed if not credential.get(key)]
    if missing:
        raise MadError(f"credential.json entry {credential.name!r} lacks {' and '.join(missing)} for cloning "
                       f"{redact(url)}", where=f"{card.source}: card {card.name!r}, field 'cred'",
                       fix=f"add {', '.join(repr(key) for key in missing)} to the entry ({'https' if http else 'ssh'} "
                           "clones need them)")
    with tempfile.TemporaryDirectory(prefix="mad-git-") as tmp:
        helper = Path(tmp) / ("askpass" if http else "ssh")
        helper.write_text(ASKPASS if http else SSH_WRAPPER)
        helper.chmod(0o700)
        env = {"MAD_GIT_USERNAME": credential.get("username")}
        if http:
            env.update(GIT_ASKPASS=str(helper), MAD_GIT_PASSWORD=credential.get("password"))
            yield ["-c", "credential.helper="], env
        else:
            env.update(GIT_SSH=str(helper), GIT_SSH_VARIANT="ssh", MAD_GIT_SSH_KEY=credential.get("ssh_key_file"))
            yield [], env


def _scrub(text: str, secrets: CardCredential | None) -> str:
    text = redact(text)
    for value in (secrets.values.values() if secrets else ()):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


def _git(card: ModelCard, args: list[str], cwd: Path | None = None, *, extra_env: dict[str, str] | None = None,
         secrets: CardCredential | None = None) -> str:
    where = f"{card.source}: card {card.name!r}, field 'url'"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "SSH_ASKPASS": "true", **(extra_env or {})}
    verb = next((arg for arg in args if not arg.startswith("-") and "=" not in arg), args[0])
    try:
        done = subprocess.run(["git", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=CLONE_TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise MadError("the card has a url to clone but git is not installed on this host", where=where,
                       fix="install git (apt-get install git), or run the card without its url") from None
    except subprocess.TimeoutExpired:
        raise MadError(f"git {verb} of {redact(card.url)} took over {CLONE_TIMEOUT} s", where=where,
                       fix="check the network or the repository's size") from None
    if done.returncode != 0:
        detail = _scrub(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}",
                        secrets)
        raise MadError(f"git {verb} of {redact(card.url)} failed: {detail}", where=where,
                       fix="check the url; a private repository needs the card's 'cred' (an entry of "
                           "credential.json), a git credential helper or ~/.git-credentials on this host "
                           "(never a token in models.json)")
    return done.stdout


def head_commit(directory: Path) -> str:
    """The commit checked out in ``directory`` ('' when it is not a git work tree or git is missing)."""
    try:
        done = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], check=False, capture_output=True,
                              text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
