"""Context keys madengine honours (model_args, GPU-count overrides, MAD_ROCM_PATH, per-card log scan)."""
from __future__ import annotations

import pytest

from pytest_madengine.context import build_context, card_overrides
from pytest_madengine.errors import MadError, WarnOnce
from pytest_madengine.host import HostFacts
from pytest_madengine.results.errorscan import scan_config, scan_errors
from pytest_madengine.workload.known_keys import cards_unknown, context_unknown, key_warnings


def test_gpu_count_overrides_follow_madengines_precedence() -> None:
    assert card_overrides({"ngpus": 2, "gpu_count": "4", "model_args": "--x 1"}) == {"args": "--x 1", "n_gpus": 4}
    assert card_overrides({"gpus_per_node": 8, "n_gpus": 1}) == {"n_gpus": 8}
    assert card_overrides({}) == {}


def test_bad_gpu_count_and_model_args_are_clear_errors() -> None:
    with pytest.raises(MadError, match="'num_gpus' = 'many' is not a GPU count"):
        build_context(context_text="{'num_gpus': 'many'}", host=HostFacts())
    with pytest.raises(MadError, match="'model_args' must be a string"):
        build_context(context_text="{'model_args': ['--a']}", host=HostFacts())


def test_mad_rocm_path_sets_the_hosts_rocm_root() -> None:
    context = build_context(context_text="{'MAD_ROCM_PATH': '/opt/rocm-6.2.0'}", host=HostFacts())
    assert context.get("rocm_path") == "/opt/rocm-6.2.0"


def test_card_log_scan_keys_apply_under_the_context() -> None:
    card = {"log_error_benign_patterns": ["ValueError: fine"], "log_error_pattern_scan": False}
    assert scan_errors("ValueError: fine\n", scan_config(card, {"log_error_pattern_scan": True})) is None
    assert scan_errors("ValueError: bad\n", scan_config(card, {"log_error_pattern_scan": True})) == "ValueError: bad"
    assert scan_errors("ValueError: bad\n", scan_config(card, {})) is None  # the card turned the scan off
    both = scan_config(card, {"log_error_benign_patterns": ["other"]})
    assert both["log_error_benign_patterns"] == ["ValueError: fine", "other"]


def test_unknown_keys_are_named_with_their_source_once() -> None:
    found = context_unknown({"gpu_vendor": "AMD", "typo": 1, "slurm": {"partitoin": "x", "partition": "y"}}, "ctx.json")
    assert found == [("typo", "ctx.json"), ("slurm.partitoin", "ctx.json")]
    cards = cards_unknown([({"name": "a", "extra": 1}, "models.json"), ({"name": "b", "extra": 2}, "models.json")])
    seen = WarnOnce()
    assert len(key_warnings(cards, seen)) == 1 and key_warnings(cards, seen) == []


def test_madengines_note_keys_are_accepted_silently_at_every_level() -> None:
    import json
    from pathlib import Path

    data = Path(__file__).parents[1] / "data" / "madengine-configs"
    for name in ("slurm-01-single-node-single-gpu.json", "k8s-04-torchrun-multi-node-advanced.json"):
        config = json.loads((data / name).read_text())
        assert any(key.startswith("_") for key in config)  # the file does carry notes
        assert not [key for key, _ in context_unknown(config, name) if key.split(".")[-1].startswith("_")]
    card = {"name": "m", "dockerfile": "d", "scripts": "s", "_comment": "x", "_note_gpu": "y",
            "slurm": {"_description": "z", "nodes": 2}, "distributed": {"_note": "w", "launcher": "torchrun"}}
    assert cards_unknown([(card, "models.json")]) == []
    assert context_unknown({"_comment": 1, "bogus": 2, "slurm": {"_x": 1, "bogus2": 1}}, "ctx") == [
        ("bogus", "ctx"), ("slurm.bogus2", "ctx")]  # real unknown keys are still named


def test_warn_once_says_each_key_once_and_keeps_keys_apart() -> None:
    once = WarnOnce()
    with pytest.warns(UserWarning) as record:
        for _ in range(3):
            once.warn(("typo", "ctx.json"), UserWarning("ctx.json: typo"), stacklevel=1)
        once.warn(("typo", "models.json"), UserWarning("models.json: typo"))
    assert [str(w.message) for w in record] == ["ctx.json: typo", "models.json: typo"]
    assert record[0].filename == __file__  # stacklevel points at the caller, not at WarnOnce
    assert once.first("new") and not once.first("new")
    once.clear()
    assert once.first("new")
