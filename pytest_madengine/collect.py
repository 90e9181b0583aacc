"""pytest nodes for a MAD package: one item per selected card (and Dockerfile variant)."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .cards import ModelCard

REGISTRY_FILE = "models.json"


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


def package_nodeids(package: Path, rootpath: Path) -> tuple[str, str]:
    """(dir node id, registry node id): the dir id equals the conftest base id pytest uses."""
    try:
        rel = package.resolve().relative_to(rootpath.resolve()).as_posix()
    except ValueError:
        rel = package.resolve().as_posix().lstrip("/")
    rel = "" if rel == "." else rel
    return rel, f"{rel}/{REGISTRY_FILE}" if rel else REGISTRY_FILE


class MadDirectory(pytest.Collector):
    """The package directory; its node id matches the package conftest.py's fixture scope."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        return []


class MadRegistry(pytest.Collector):
    """The package's model registry: parent of every model item."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        return []


class MadItem(pytest.Function):
    """A model run (or build) as a pytest test."""

    spec: ItemSpec

    def reportinfo(self) -> tuple[Any, int, str]:
        return Path(self.spec.card.source), 0, f"MAD model {self.spec.card.name}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        from .errors import MadError

        if isinstance(excinfo.value, MadError):
            return excinfo.value.message
        return super().repr_failure(excinfo)


def build_items(session: pytest.Session, package: Path, specs: Sequence[ItemSpec],
                test_function: Callable[..., Any]) -> list[MadItem]:
    dir_id, registry_id = package_nodeids(package, session.config.rootpath)
    parent: pytest.Collector = session
    if dir_id:
        parent = MadDirectory.from_parent(session, name=dir_id, path=package, nodeid=dir_id)
    registry = MadRegistry.from_parent(parent, name=REGISTRY_FILE, path=package / REGISTRY_FILE,
                                       nodeid=registry_id)
    items = []
    for spec in specs:
        item = MadItem.from_parent(registry, name=spec.name, callobj=test_function,
                                   originalname=spec.card.name)
        item.spec = spec
        for tag in spec.card.tags:
            item.add_marker(tag)
        items.append(item)
    # Tell the terminal reporter (and other listeners) what was collected, as a file would.
    report = pytest.CollectReport(registry_id, "passed", None, list(items))
    session.config.hook.pytest_collectreport(report=report)
    return items


def register_markers(config: pytest.Config, cards: Iterable[ModelCard]) -> None:
    known = {line.split(":")[0].strip() for line in config.getini("markers")}
    for tag in sorted({tag for card in cards for tag in card.tags} - known):
        config.addinivalue_line("markers", f"{tag}: MAD model tag")
