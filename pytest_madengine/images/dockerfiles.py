"""Dockerfile resolution: a card's ``dockerfile`` prefix → the Dockerfiles that fit the context.

A candidate is ``<prefix>.*Dockerfile``; its first lines carry ``# CONTEXT {...}`` (a Python dict
literal, parsed with ``ast.literal_eval``). A candidate is kept when every header key that the
run context also has carries an equal value. Unlike madengine (exact comparison, silent drops)
we compare string values case-insensitively (``AMD`` == ``amd``) and report every reason a
card ends up without a Dockerfile.
"""
from __future__ import annotations

import ast
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..cards import ModelCard
from ..errors import MadError
from ..workload.paths import confined

HEADER_LINES = 10  # the header must be among a Dockerfile's first lines
_HEADER = re.compile(r"^\s*#\s*CONTEXT\b(.*)$")
_SUFFIX = ".Dockerfile"


def _card_label(card: ModelCard) -> str:
    return f"{card.source}: card {card.name!r}" if getattr(card, "source", "") else f"card {card.name!r}"


def find_candidates(card: ModelCard, package_root: Path) -> list[Path]:
    """``<prefix>.*Dockerfile`` files, sorted; the prefix itself when it names a Dockerfile."""
    where = f"{_card_label(card)}, field 'dockerfile'"
    prefix = confined(package_root, card.dockerfile, where=where, field="dockerfile").parent / Path(card.dockerfile).name
    if prefix.is_file() and prefix.name.endswith("Dockerfile"):
        return [prefix]
    try:
        mtime = prefix.parent.stat().st_mtime_ns
    except OSError:
        return []
    # No glob: card names may contain glob metacharacters.
    start = prefix.name + "."
    return [prefix.parent / name for name in _dockerfiles_in(str(prefix.parent), mtime)
            if name.startswith(start)]


# Hundreds of cards share one docker/ dir and a few Dockerfiles: list and read each once per
# change (keyed by mtime), so collecting a 2,000-card hub stays cheap.
@lru_cache(maxsize=256)
def _dockerfiles_in(directory: str, mtime_ns: int) -> tuple[str, ...]:
    with os.scandir(directory) as entries:
        return tuple(sorted(entry.name for entry in entries
                            if entry.name.endswith("Dockerfile") and entry.is_file()))


@lru_cache(maxsize=1024)
def _header_text(path: str, mtime_ns: int, size: int) -> str | None:
    with open(path, encoding="utf-8", errors="replace") as handle:
        for _ in range(HEADER_LINES):
            match = _HEADER.match(handle.readline())
            if match:
                return match.group(1).strip()
    return None


def read_header(card: ModelCard, dockerfile: Path) -> dict[str, Any] | None:
    """The ``# CONTEXT`` dict of a Dockerfile, or None when it has none."""
    where = f"{_card_label(card)}, Dockerfile {dockerfile}"
    try:
        stat = dockerfile.stat()
        text = _header_text(str(dockerfile), stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise MadError(f"cannot read the Dockerfile ({exc.strerror})", where=where,
                       fix="make the file readable") from None
    return None if text is None else _parse_header(text, where)


def _parse_header(text: str, where: str) -> dict[str, Any]:
    fix = "write the header as # CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}"
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise MadError(f"the # CONTEXT header {text!r} is not a Python dict literal",
                       where=where, fix=fix) from None
    if not isinstance(value, dict):
        raise MadError(f"the # CONTEXT header is a {type(value).__name__}, not a dict",
                       where=where, fix=fix)
    return value


def values_equal(wanted: Any, actual: Any) -> bool:
    """Header value vs context value; strings compare case-insensitively."""
    if isinstance(wanted, str) and isinstance(actual, str):
        return wanted.strip().lower() == actual.strip().lower()
    return wanted == actual


def header_matches(header: dict[str, Any], context: dict[str, Any]) -> bool:
    return all(values_equal(value, context[key]) for key, value in header.items() if key in context)


def resolve_dockerfiles(card: ModelCard, package_root: Path, context: dict[str, Any]) -> list[Path]:
    """The Dockerfiles of ``card`` that fit ``context`` (sorted), or a MadError saying why none."""
    package_root = Path(package_root)
    candidates = find_candidates(card, package_root)
    label = _card_label(card)
    if not candidates:
        raise MadError(
            f"no Dockerfile found: looked for {card.dockerfile}.*Dockerfile under {package_root}",
            where=f"{label}, field 'dockerfile'",
            fix=f"add e.g. {card.dockerfile}.ubuntu.amd.Dockerfile or correct the card's 'dockerfile' prefix",
        )
    headers: dict[Path, dict[str, Any]] = {}
    for path in candidates:
        header = read_header(card, path)
        if header is None:
            raise MadError(
                f"Dockerfile {path.relative_to(package_root)} has no '# CONTEXT {{...}}' header "
                f"in its first {HEADER_LINES} lines (madengine silently drops such a model)",
                where=label,
                fix="add a line such as # CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'} at the top",
            )
        headers[path] = header
    kept = [path for path in candidates if header_matches(headers[path], context)]
    if not kept:
        shown = "; ".join(f"{path.name}: {headers[path]}" for path in candidates)
        keys = sorted({key for header in headers.values() for key in header})
        wanted = {key: context[key] for key in keys if key in context}
        raise MadError(
            f"no Dockerfile fits the context {wanted} (headers: {shown})",
            where=label,
            fix="pass a matching context, e.g. --mad-context \"{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\", "
                "or add a Dockerfile for this context",
        )
    return kept


_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def check_image_name(card: ModelCard) -> None:
    """Refuse a card whose name cannot be part of a Docker image name (space, quote, newline...)."""
    if not _REPOSITORY.match(f"ci-{card.name}_x".lower().replace("/", "_")):
        raise MadError(f"the card name {card.name!r} cannot be part of a Docker image name "
                       f"(ci-<name>_<dockerfile>)", where=f"{_card_label(card)}, field 'name'",
                       fix="use letters, digits and single '.', '_' or '-' between them (as madengine's hub does)")


def image_name(card: ModelCard, dockerfile: Path, name_suffix: str = "") -> str:
    """madengine's image name: ``ci-<name>_<dockerfile basename without .Dockerfile>``.

    ``name_suffix`` (e.g. ``-1a2b3c4d``) follows the name when two cards' names would clash.
    """
    base = Path(dockerfile).name
    base = base.removesuffix(_SUFFIX)
    return f"ci-{card.name}{name_suffix}_{base}".lower().replace("/", "_")
