"""The content hash of an image's inputs: the Dockerfile, every file of the build context that is
sent to the engine (``.dockerignore`` respected) and the build args.

Stored as the image label ``pytest-madengine.content-hash`` (``images.build``); an image with the
right name and label is reused without a build. Hex SHA-256; files over ``LARGE_FILE`` bytes are
hashed by size and mtime, and file digests are cached per process (every item of a session
re-checks its image's context).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

HASH_VERSION = b"pytest-madengine image hash v1\0"
# Never part of a build context: VCS data, caches and our own outputs would force a rebuild
# after every commit or run.
ALWAYS_EXCLUDED = (".git", "**/__pycache__", ".pytest_cache", "mad_logs", "perf.csv", "perf_entry.csv", ".mad")
LARGE_FILE = 64 * 1024 * 1024  # above this a file is hashed by size + mtime, not content
_file_digests: dict[tuple[str, int, int, int, int], bytes] = {}


def _dockerignore(context_dir: Path) -> list[str]:
    path = context_dir / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context_dir: Path, dockerfile_rel: str | None, extra_excludes: list[str]) -> list[str]:
    from docker.utils.build import exclude_paths

    patterns = _dockerignore(context_dir) + list(ALWAYS_EXCLUDED) + extra_excludes
    return sorted(exclude_paths(str(context_dir), patterns, dockerfile=dockerfile_rel or "Dockerfile"))


def content_hash(dockerfile: Path, context_dir: Path, files: list[str] | tuple[str, ...],
                 build_args: dict[str, str]) -> str:
    digest = hashlib.sha256(HASH_VERSION)
    digest.update(dockerfile.read_bytes() + b"\0")
    for key, value in sorted(build_args.items()):
        digest.update(f"arg {key}={value}\0".encode())
    for rel in files:
        path = context_dir / rel
        stat = path.lstat()
        digest.update(f"path {rel} {stat.st_mode & 0o777}\0".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode() + b"\0")
        elif path.is_file():
            _hash_file(digest, path, stat)
    return digest.hexdigest()


def _hash_file(digest: Any, path: Path, stat: os.stat_result) -> None:
    if stat.st_size > LARGE_FILE:
        digest.update(f"large {stat.st_size} {stat.st_mtime_ns}\0".encode())
        return
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    file_digest = _file_digests.get(key)
    if file_digest is None:
        one = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                one.update(block)
        file_digest = _file_digests[key] = one.digest()
    digest.update(file_digest)
