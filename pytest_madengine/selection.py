"""Tag selection with madengine's semantics (MAD-FORMAT.md, "Tag selection"), de-duplicated.

A tag is ``SELECTOR[:k1=v1[:k2=v2...]]``. SELECTOR is ``all``, a full model name, a card tag,
``dir/X`` (scoped to scripts/dir: X is ``all``, a tag, or a short name), or the bare short name of
a per-dir card when nothing else matches and exactly one card has it. Parameters are appended to
the selected cards' args as ``--k1 v1 --k2 v2``. The result is the union over the tags, in order
of first selection (cards in package order within one tag), unique by (full name, params).
Callers split comma-separated option values before calling ``select``.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .cards import ModelCard
from .errors import MadError

LIST_HINT = "run `pytest --mad-tags all --collect-only -q` to list them"
MAX_SUGGESTIONS = 5

Params = tuple[tuple[str, str], ...]


def select(cards: Sequence[ModelCard], tags: Sequence[str]) -> list[ModelCard]:
    chosen: list[ModelCard] = []
    seen: set[tuple[str, Params]] = set()
    for tag in tags:
        selector, params = parse_tag(tag)
        for card in match(cards, selector, tag):
            key = (card.name, params)
            if key not in seen:
                seen.add(key)
                chosen.append(card.with_params(params) if params else card)
    return chosen


def parse_tag(tag: str) -> tuple[str, Params]:
    parts = [part.strip() for part in str(tag).split(":") if part.strip()]
    if not parts:
        raise MadError(f"empty tag {tag!r}", where="--mad-tags",
                       fix="give a model name, a tag, dir/name, dir/all or all")
    params: list[tuple[str, str]] = []
    for part in parts[1:]:
        key, equals, value = part.partition("=")
        if not equals or not key.strip():
            raise MadError(f"tag {tag!r}: parameter {part!r} is not KEY=VALUE", where="--mad-tags",
                           fix=f"write parameters as {parts[0]}:key=value[:key2=value2]")
        params.append((key.strip(), value.strip()))
    return parts[0], tuple(params)


def match(cards: Sequence[ModelCard], selector: str, tag: str | None = None) -> list[ModelCard]:
    """The cards one selector picks, in package order; MadError when it picks none."""
    if selector == "all":
        return list(cards)
    scope, slash, rest = selector.partition("/")
    if slash and scope and rest and "/" not in rest:
        prefix = scope + "/"
        found = [card for card in cards if card.name.startswith(prefix)
                 and (rest == "all" or rest in card.tags or card.name == selector)]
    else:
        found = [card for card in cards if card.name == selector or selector in card.tags]
    if not found and not slash:
        found = _by_short_name(cards, selector)
    if not found:
        raise _no_match(cards, selector, tag or selector)
    return found


def _by_short_name(cards: Sequence[ModelCard], short: str) -> list[ModelCard]:
    found = [card for card in cards if card.directory is not None and card.short_name == short]
    if len(found) > 1:
        names = ", ".join(card.name for card in found)
        raise MadError(f"tag {short!r} is the short name of several models: {names}",
                       where="--mad-tags", fix="use the full name dir/name of the one you mean")
    return found


def _no_match(cards: Sequence[ModelCard], selector: str, tag: str) -> MadError:
    vocabulary = {"all"}
    for card in cards:
        vocabulary.update((card.name, card.short_name, *card.tags))
        if card.directory:
            vocabulary.add(f"{card.directory}/all")
    nearest = difflib.get_close_matches(selector, sorted(vocabulary), n=MAX_SUGGESTIONS, cutoff=0.5)
    hint = f"did you mean {', '.join(nearest)}? " if nearest else ""
    return MadError(f"tag {tag!r} matches no model of the package ({len(cards)} models)",
                    where="--mad-tags", fix=f"{hint}{LIST_HINT}")


@dataclass(frozen=True)
class ItemSpec:
    """What one test item runs: a card, and the Dockerfile when a card has several."""

    name: str
    card: ModelCard
    dockerfile: str | None = None  # package-relative; None = resolve when the model runs


def _variant(dockerfile: str) -> str:
    """'docker/dummy.ubuntu.amd.Dockerfile' → 'ubuntu.amd' (the part after the prefix)."""
    base = os.path.basename(dockerfile).removesuffix(".Dockerfile")
    return base.split(".", 1)[1] if "." in base else base


def plan_items(cards: Sequence[ModelCard], variants: Callable[[ModelCard], list[str]]) -> list[ItemSpec]:
    """One spec per card, or per surviving Dockerfile when a card resolves to several."""
    specs: list[ItemSpec] = []
    for card in cards:
        dockerfiles = variants(card)
        if len(dockerfiles) <= 1:
            specs.append(ItemSpec(card.test_id, card, dockerfiles[0] if dockerfiles else None))
            continue
        for dockerfile in dockerfiles:
            parts = [f"{k}={v}" for k, v in card.params] + [_variant(dockerfile)]
            specs.append(ItemSpec(f"{card.name}[{'-'.join(parts)}]", card, dockerfile))
    return specs
