"""Load a MAD package's model cards: the root registry, then one registry per scripts/<dir>.

Order is fixed (root ``models.json`` first, then ``scripts/<dir>`` sorted by name, cards in file
order) so every process, xdist workers included, sees the same list.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cards import REQUIRED, ModelCard
from ..errors import MadError
from ..jsonfile import read_json
from .dynamic import run_dynamic

REGISTRY = "models.json"
DYNAMIC = "get_models_json.py"
RESERVED_DIRS = frozenset({"common"})  # scripts/common holds tools and pre/post scripts
PATH_FIELDS = ("dockerfile", "scripts")  # rewritten root-relative; dockercontext is not
MAPPING_FIELDS = ("env_vars", "docker_build_arg")
CARD_SHAPE = 'a JSON list of cards: [{"name": ..., "dockerfile": ..., "scripts": ...}] ([] when empty)'


@dataclass(frozen=True)
class CardError:
    """A registry entry that is not a valid card: where it is and why (one paragraph)."""

    source: str  # the registry file, package-relative
    name: str  # the card's full name, or ``entry-<index>`` when it has no usable name
    error: MadError


@dataclass(frozen=True)
class Package:
    root: Path
    cards: tuple[ModelCard, ...]
    errors: tuple[CardError, ...] = ()  # bad entries, when loaded with ``card_errors=True``


def load_package(root: Path, *, context: dict[str, Any] | None = None, timeout: int = 120,
                 cache_dir: Path | None = None, card_errors: bool = False) -> Package:
    """Every card of the package at ``root``; dynamic registries run once (cached in cache_dir).

    A bad entry (wrong type, missing field) raises MadError, or with ``card_errors`` is kept in
    ``Package.errors`` while the other cards load (a collection error of that card, pytest's way).
    A registry that cannot be read at all always raises.
    """
    root = Path(os.path.abspath(root))
    registry = _root_registry(root)
    errors: list[CardError] = []
    cards = list(_cards(read_registry(registry), source=REGISTRY, dirname=None, errors=errors))
    for dirname, path in family_registries(root):
        source = path.relative_to(root).as_posix()
        if path.name == REGISTRY:
            entries = read_registry(path)
        else:
            entries = run_dynamic(path, dirname=dirname, root=root, context=context or {},
                                  timeout=timeout, cache_dir=cache_dir)
        cards.extend(_cards(entries, source=source, dirname=dirname, errors=errors))
    if errors and not card_errors:
        raise errors[0].error
    _check_unique(cards)
    return Package(root=root, cards=tuple(cards), errors=tuple(errors))


def _root_registry(root: Path) -> Path:
    if not root.is_dir():
        raise MadError(f"the MAD package directory {root} does not exist", where="--mad-package",
                       fix="pass the root of a MAD package (the directory holding models.json "
                           "and scripts/) with --mad-package DIR, or run pytest from it")
    registry = root / REGISTRY
    if not registry.is_file():
        raise MadError("the MAD package has no root models.json", where=str(registry),
                       fix="run pytest from the package root or pass --mad-package DIR; a package "
                           "whose cards all live in scripts/<dir>/ still needs a root models.json "
                           "holding []")
    return registry


def family_registries(root: Path) -> Iterator[tuple[str, Path]]:
    """(dir name, registry file) per first-level ``scripts/<dir>`` that has one, sorted by dir."""
    scripts = root / "scripts"
    if not scripts.is_dir():
        return
    dirnames = sorted(entry.name for entry in os.scandir(scripts)
                      if entry.is_dir() and entry.name not in RESERVED_DIRS)
    for dirname in dirnames:
        static, dynamic = scripts / dirname / REGISTRY, scripts / dirname / DYNAMIC
        if static.is_file() and dynamic.is_file():
            raise MadError(f"scripts/{dirname} has both {REGISTRY} and {DYNAMIC}",
                           where=str(scripts / dirname),
                           fix=f"keep one: static cards in {REGISTRY} or generated ones in {DYNAMIC}")
        if static.is_file():
            yield dirname, static
        elif dynamic.is_file():
            yield dirname, dynamic


def read_registry(path: Path) -> list[Any]:
    """The parsed JSON list of a ``models.json``; every defect raises MadError."""
    where = str(path)
    data = read_json(path, fix="correct the JSON syntax there (a trailing comma, a missing comma or "
                               "quote, or a comment are the usual causes)")
    if not isinstance(data, list):
        raise MadError(f"the top level is a JSON {_json_type(data)}, not a list", where=where,
                       fix=f"make it {CARD_SHAPE}")
    return data


def _cards(entries: list[Any], *, source: str, dirname: str | None, errors: list[CardError]) -> Iterator[ModelCard]:
    for index, raw in enumerate(entries):
        try:
            yield _card(raw, index=index, source=source, dirname=dirname)
        except MadError as error:
            errors.append(CardError(source, _entry_name(raw, index, dirname), error))


def _entry_name(raw: Any, index: int, dirname: str | None) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name.strip():
        name = f"entry-{index}"
    return name if dirname is None else f"{dirname}/{name}"


def _card(raw: Any, *, index: int, source: str, dirname: str | None) -> ModelCard:
    if not isinstance(raw, dict):
        raise MadError(f"entry {index} is a JSON {_json_type(raw)}, not an object (a card)",
                       where=source, fix=f"make the file {CARD_SHAPE}")
    name = raw.get("name")
    label = f"{source}: card {name!r}" if isinstance(name, str) else f"{source}: entry {index}"
    _check_types(raw, label)
    if dirname is not None:
        raw = _rewrite_paths(raw, dirname)
    try:
        return ModelCard.from_dict(raw, source=source, directory=dirname)
    except MadError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as error:
        raise MadError(f"invalid card ({error})", where=label,
                       fix="give each field the type MAD-FORMAT.md documents") from None


def _check_types(raw: dict[str, Any], label: str) -> None:
    for key in REQUIRED:
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise MadError(f"field {key!r} is a JSON {_json_type(value)}, not a string", where=label,
                           fix=f'write it as a string, e.g. "{key}": "..."')
    for key in MAPPING_FIELDS:
        value = raw.get(key)
        if value not in (None, "") and not isinstance(value, dict):
            raise MadError(f"field {key!r} is a JSON {_json_type(value)}, not an object", where=label,
                           fix=f'write it as an object, e.g. "{key}": {{"NAME": "value"}}')


def _rewrite_paths(raw: dict[str, Any], dirname: str) -> dict[str, Any]:
    """Per-dir paths are relative to scripts/<dir>/; make them root-relative (never splitext)."""
    rewritten = dict(raw)
    for key in PATH_FIELDS:
        value = raw.get(key)
        if isinstance(value, str) and value.strip():
            rewritten[key] = os.path.normpath(os.path.join("scripts", dirname, value))
    return rewritten


def _check_unique(cards: list[ModelCard]) -> None:
    seen: dict[str, ModelCard] = {}
    for card in cards:
        first = seen.setdefault(card.name, card)
        if first is not card:
            raise MadError(f"model {card.name!r} is defined twice", where=f"{first.source} and {card.source}",
                           fix="rename one of the cards: full model names must be unique")


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
             float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
