"""Tag selection: madengine's semantics, de-duplicated, with clear errors."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.discovery import load_package
from pytest_madengine.errors import MadError
from pytest_madengine.selection import parse_tag, select

EDGE = Path(__file__).resolve().parents[1] / "packages" / "edge"


def make(name: str, tags: Sequence[str] = (), directory: str | None = None, **extra: Any) -> ModelCard:
    raw = {"name": name, "dockerfile": "docker/x", "scripts": "run.sh", "tags": list(tags), **extra}
    return ModelCard.from_dict(raw, source="test", directory=directory)


CARDS = (
    make("root_model", ["pyt", "inference"]),
    make("llama-3.1-8b", ["pyt", "vllm", "inference"], "vllm", args="--config a.yaml"),
    make("llama-3.1-70b", ["pyt", "vllm", "inference"], "vllm"),
    make("maxtext_train", ["jax", "training"], "jax"),
    make("shared_short", ["jax"], "jax"),
    make("shared_short", ["sglang"], "sglang"),
    make("inference", ["sglang"], "sglang"),  # a short name equal to a tag elsewhere
)


def picked(tags: Sequence[str], cards: Sequence[ModelCard] = CARDS) -> list[str]:
    return [card.test_id for card in select(cards, tags)]


@pytest.mark.parametrize("tags, expected", [
    (["all"], [c.name for c in CARDS]),
    (["root_model"], ["root_model"]),
    (["vllm/llama-3.1-8b"], ["vllm/llama-3.1-8b"]),
    (["jax"], ["jax/maxtext_train", "jax/shared_short"]),
    (["vllm/all"], ["vllm/llama-3.1-8b", "vllm/llama-3.1-70b"]),
    (["jax/training"], ["jax/maxtext_train"]),  # dir/tag: tag scoped to the dir
    (["sglang/inference"], ["sglang/inference"]),  # dir/name: short name in scope
    (["llama-3.1-70b"], ["vllm/llama-3.1-70b"]),  # bare short name, unambiguous
    (["inference"], ["root_model", "vllm/llama-3.1-8b", "vllm/llama-3.1-70b"]),  # tag wins
    ([], []),
])
def test_selectors(tags: list[str], expected: list[str]) -> None:
    assert picked(tags) == expected


def test_union_is_deduplicated_in_first_selection_order() -> None:
    assert picked(["jax/all", "vllm/llama-3.1-70b", "pyt", "jax"]) == [
        "jax/maxtext_train", "jax/shared_short", "vllm/llama-3.1-70b", "root_model", "vllm/llama-3.1-8b"]


def test_params_are_applied_and_change_identity() -> None:
    chosen = select(CARDS, ["vllm/llama-3.1-8b:batch=4:dtype=fp8", "vllm/llama-3.1-8b", "vllm/all:batch=4:dtype=fp8"])
    assert [c.test_id for c in chosen] == ["vllm/llama-3.1-8b[batch=4-dtype=fp8]", "vllm/llama-3.1-8b",
                                           "vllm/llama-3.1-70b[batch=4-dtype=fp8]"]
    assert chosen[0].params == (("batch", "4"), ("dtype", "fp8"))
    assert chosen[0].full_args == "--config a.yaml --batch 4 --dtype fp8"
    assert chosen[1].params == () and chosen[1].full_args == "--config a.yaml"


def test_param_value_may_hold_equals_and_parts_are_stripped() -> None:
    assert parse_tag(" vllm : extra=a=b : n = 2 :") == ("vllm", (("extra", "a=b"), ("n", "2")))


@pytest.mark.parametrize("tag", ["vllm:batch", "vllm:=4", "vllm:batch=4:dtype"])
def test_malformed_params(tag: str) -> None:
    with pytest.raises(MadError, match="is not KEY=VALUE") as info:
        select(CARDS, [tag])
    assert "--mad-tags" in str(info.value) and "key=value" in str(info.value)


@pytest.mark.parametrize("tag", ["", " : ", ":k=v"])
def test_empty_selector(tag: str) -> None:
    with pytest.raises(MadError):
        select(CARDS, [tag])


def test_ambiguous_short_name_lists_candidates() -> None:
    with pytest.raises(MadError) as info:
        select(CARDS, ["shared_short"])
    message = str(info.value)
    assert "jax/shared_short" in message and "sglang/shared_short" in message and "full name" in message


def test_no_match_names_tag_nearest_and_how_to_list() -> None:
    with pytest.raises(MadError) as info:
        select(CARDS, ["pyt", "vlm"])
    message = str(info.value)
    assert "'vlm' matches no model" in message
    assert "did you mean vllm" in message
    assert "--mad-tags all --collect-only -q" in message


def test_scoped_selector_never_reaches_other_dirs_or_root() -> None:
    with pytest.raises(MadError, match="matches no model"):
        select(CARDS, ["vllm/training"])
    with pytest.raises(MadError, match="matches no model"):
        select(CARDS, ["nodir/all"])


def test_edge_package_selection() -> None:
    cards = load_package(EDGE, context={}).cards
    assert picked(["edge"], cards) == ["pyt_wan2.1_inference", "edge_root_all_gpus"]
    assert picked(["pyt_wan2.1_inference"], cards) == ["pyt_wan2.1_inference"]
    assert picked(["family_b/all"], cards) == ["family_b/dyn_0", "family_b/dyn_1", "family_b/dyn_hooked"]
    assert picked(["inference"], cards) == ["pyt_wan2.1_inference", "family_a/model_a_2"]
    assert picked(["model.a-1:lr=0.1"], cards) == ["family_a/model.a-1[lr=0.1]"]
