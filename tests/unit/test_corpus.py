"""The real MAD hub's 156 cards load, select with the documented counts, and load fast."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pytest_madengine.discovery import Package, load_package
from pytest_madengine.selection import select

CORPUS = Path("/work/shared/corpus/mad-hub-2026")
BENCH = Path(__file__).resolve().parents[2] / "bench" / "collect.py"


@pytest.fixture(scope="module")
def corpus() -> Package:
    if not CORPUS.is_dir():
        pytest.skip(f"the MAD hub corpus is not at {CORPUS}")
    return load_package(CORPUS, context={})


@pytest.mark.parametrize("tag, count", [
    ("all", 156), ("pyt", 125), ("inference", 110), ("vllm", 66), ("training", 34), ("jax", 28),
    ("sglang", 24), ("vllm/all", 40),
])
def test_corpus_selection_counts(corpus: Package, tag: str, count: int) -> None:
    assert len(select(corpus.cards, [tag])) == count


def test_corpus_cards_are_normalised(corpus: Package) -> None:
    assert len({c.name for c in corpus.cards}) == 156
    assert all(c.directory and c.name.startswith(c.directory + "/") for c in corpus.cards)
    assert all(c.dockerfile.startswith("docker/") for c in corpus.cards)
    assert all(c.scripts.startswith(f"scripts/{c.directory}/") for c in corpus.cards)
    dirs = [c.directory for c in corpus.cards]
    assert dirs == sorted(dirs)  # dirs in sorted order, each dir's cards contiguous


def test_corpus_dotted_names_and_bare_short_names(corpus: Package) -> None:
    wan = select(corpus.cards, ["pyt_wan2.1_inference/all"])
    assert [c.dockerfile for c in wan] == ["docker/pyt_wan2.1_inference"]
    assert [c.name for c in select(corpus.cards, ["pyt_vllm_llama-3.1-8b"])] == \
        ["vllm/pyt_vllm_llama-3.1-8b"]


def test_corpus_union_is_deduplicated(corpus: Package) -> None:
    assert len(select(corpus.cards, ["vllm", "vllm/all", "inference", "pyt"])) == \
        len({c.name for c in corpus.cards if {"vllm", "inference", "pyt"} & set(c.tags)
             or c.directory == "vllm"})


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_collect", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_thousand_cards_load_and_select(tmp_path: Path) -> None:
    package = _bench_module().write_synthetic_package(tmp_path / "pkg", cards=2000, dirs=40)
    cards = load_package(package, context={}).cards  # its speed: bench/collect.py
    chosen = select(cards, ["all", "fam07/all", "inference"])
    assert len(cards) == 2000 and len(chosen) == 2000
    assert len({c.directory for c in cards}) == 40
