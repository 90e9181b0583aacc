"""Collection of a MAD package as pytest items: names, ids, markers, selection, errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import AMD_CPU

ALL_EXAMPLE = ["dummy", "dummy_multi", "dummy2/model1", "dummy3/model3_bs1", "dummy3/model3_bs16"]


def collected_names(result: pytest.RunResult) -> list[str]:
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


def test_collect_only_lists_every_discovery_form(pytester: pytest.Pytester, example_package: Path) -> None:
    result = pytester.runpytest("--mad-package", str(example_package), "--mad-tags", "all",
                                "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    assert collected_names(result) == ALL_EXAMPLE
    assert all(line.startswith("hub/models.json::") for line in result.outlines if "::" in line)


def test_marks_and_keywords_filter(pytester: pytest.Pytester, example_package: Path) -> None:
    base = ["--mad-package", str(example_package), "--mad-tags", "all", "--collect-only", "-q",
            "--strict-markers"]
    result = pytester.runpytest(*base, "-m", "dummies and not training and not dynamic")
    assert collected_names(result) == ["dummy", "dummy_multi"]
    result = pytester.runpytest(*base, "-k", "model3")
    assert collected_names(result) == ["dummy3/model3_bs1", "dummy3/model3_bs16"]


def test_tag_parameters_become_ids_and_args(pytester: pytest.Pytester, example_package: Path) -> None:
    result = pytester.runpytest("--mad-package", str(example_package), "--mad-tags",
                                "dummy:batch_size=8:precision=fp16", "--collect-only", "-q")
    assert collected_names(result) == ["dummy[batch_size=8-precision=fp16]"]


def test_union_of_tags_is_deduplicated(pytester: pytest.Pytester, example_package: Path) -> None:
    result = pytester.runpytest("--mad-package", str(example_package), "--mad-tags", "dummy,dummy2/all",
                                "--mad-tags", "training", "--mad-tags", "model1", "--collect-only", "-q")
    assert collected_names(result) == ["dummy", "dummy2/model1"]


def test_unknown_tag_is_a_usage_error_with_nearest_names(pytester: pytest.Pytester,
                                                         example_package: Path) -> None:
    result = pytester.runpytest("--mad-package", str(example_package), "--mad-tags", "dumy",
                                "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "dumy" in err and "dummy" in err
    assert "Traceback" not in err + result.stdout.str()


@pytest.mark.parametrize(("args", "expected"), [
    (["--mad-context", "{'gpu_vendor': 'AMD'"], "--mad-context"),
    (["--mad-target", "mars"], "unknown target 'mars'"),
    (["--mad-timeout", "soon"], "--mad-timeout"),
])
def test_bad_options_are_clear_usage_errors(pytester: pytest.Pytester, example_package: Path,
                                            args: list[str], expected: str) -> None:
    result = pytester.runpytest("--mad-package", str(example_package), "--mad-tags", "all",
                                "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_malformed_registry_names_file_line_and_column(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pkg = pytester.path / "broken"
    pkg.mkdir()
    (pkg / "models.json").write_text('[\n  {"name": "a",\n   "dockerfile": "docker/a"\n  "scripts": "x"}\n]\n')
    result = pytester.runpytest("--mad-package", str(pkg), "--mad-tags", "all", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "models.json" in err and "line 4" in err
    assert "INTERNALERROR" not in err + result.stdout.str()


def test_plugin_is_inert_without_mad_options(pytester: pytest.Pytester, example_package: Path) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest("test_plain.py", "-q")
    result.assert_outcomes(passed=1)
    assert "MAD results" not in result.stdout.str()


def test_ini_mad_package_activates_the_plugin(pytester: pytest.Pytester, example_package: Path) -> None:
    pytester.makeini(f"[pytest]\nmad_package = {example_package}\nmad_tags = dummy2/all\n")
    result = pytester.runpytest("--collect-only", "-q")
    assert collected_names(result) == ["dummy2/model1"]


def test_dockerfile_variants_become_separate_items(pytester: pytest.Pytester, example_package: Path) -> None:
    base = ["--mad-package", str(example_package), "--mad-tags", "dummy", AMD_CPU, "--collect-only", "-q"]
    assert collected_names(pytester.runpytest(*base)) == ["dummy"]
    (example_package / "docker" / "dummy.ubuntu.amd.rocm7.Dockerfile").write_text(
        "# CONTEXT {'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\nFROM scratch\n")
    assert collected_names(pytester.runpytest(*base)) == ["dummy[ubuntu.amd]", "dummy[ubuntu.amd.rocm7]"]


def test_real_corpus_counts(pytester: pytest.Pytester) -> None:
    corpus = Path(__file__).resolve().parents[1] / "data" / "mad-hub-2026"
    counts = {}
    for tag in ("all", "pyt", "vllm", "vllm/all"):
        result = pytester.runpytest("--mad-package", str(corpus), "--mad-tags", tag, "--collect-only", "-q")
        counts[tag] = len(collected_names(result))
    assert counts == {"all": 156, "pyt": 125, "vllm": 66, "vllm/all": 40}


def test_only_named_paths_are_collected_beside_the_models(pytester: pytest.Pytester,
                                                          example_package: Path) -> None:
    pytester.makeini("[pytest]\ntestpaths = suite\n")
    pytester.mkdir("suite")
    (pytester.path / "suite" / "test_other.py").write_text("def test_other():\n    pass\n")
    base = ["--mad-package", str(example_package), "--mad-tags", "dummy", "--collect-only", "-q"]
    assert collected_names(pytester.runpytest(*base)) == ["dummy"]
    named = pytester.runpytest("suite", *base)
    assert "suite/test_other.py::test_other" in named.outlines
    assert "hub/models.json::dummy" in named.outlines


def _hub_with_bad_card(root: Path) -> Path:
    from .conftest import card, write_card_package

    return write_card_package(root, [card("good_one", "scripts/ok.sh"),
                                     card("bad_gpus", "scripts/ok.sh", n_gpus=["8"]),
                                     ["not", "a", "card"],
                                     card("good_two", "scripts/ok.sh")], {"scripts/ok.sh": "true\n"})


def test_a_bad_card_is_a_collection_error_naming_it(pytester: pytest.Pytester) -> None:
    hub = _hub_with_bad_card(pytester.path / "hub")
    result = pytester.runpytest("--mad-package", str(hub), "--mad-tags", "good_one", "--collect-only", "-q")
    text = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, text
    assert "2 errors" in text and "Interrupted" in text
    assert "invalid card bad_gpus: models.json: card 'bad_gpus': field 'n_gpus' is a JSON list" in text
    assert "invalid card entry-2: models.json: entry 2 is a JSON list" in text
    assert "Traceback" not in text


def test_continue_on_collection_errors_runs_the_other_cards(pytester: pytest.Pytester) -> None:
    hub = _hub_with_bad_card(pytester.path / "hub")
    result = pytester.runpytest("--mad-package", str(hub), "--mad-tags", "tiny", "--collect-only", "-q",
                                "--continue-on-collection-errors")
    assert [line for line in result.outlines if line.startswith("hub/")] == [
        "hub/models.json::good_one", "hub/models.json::good_two"]
    assert "ERROR hub/models.json::bad_gpus" in result.stdout.str()
