"""Hostile inputs to the pure helpers of issue 17: path confinement, bounds, names, secrets."""
from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.errors import MadError
from pytest_madengine.fileio import disambiguated, safe_name
from pytest_madengine.host import parse_gpu_list
from pytest_madengine.images.dockerfiles import check_image_name
from pytest_madengine.images.registry import check_registry
from pytest_madengine.images.supply import image_name_suffixes
from pytest_madengine.results.performance import MAX_RESULT_ROWS, read_multiple_results
from pytest_madengine.workload.paths import confined
from pytest_madengine.workload.secrets import merge_secrets, redact, secret_values, split_secrets, without_secrets


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "scripts" / "m").mkdir(parents=True)
    (root / "scripts" / "m" / "run.sh").write_text("true\n")
    (tmp_path / "outside").mkdir()
    (root / "scripts" / "out").symlink_to(tmp_path / "outside")
    return root


@pytest.mark.parametrize("value", ["/etc", "/etc/passwd", "../outside", "scripts/../../outside",
                                   "scripts/out", "scripts/out/x", "scripts/m/../../../outside/run.sh"])
def test_paths_out_of_the_package_are_refused_naming_the_field(package: Path, value: str) -> None:
    with pytest.raises(MadError) as info:
        confined(package, value, where="models.json: card 'x'", field="scripts")
    assert "models.json: card 'x'" in info.value.message and f"scripts {value!r}" in info.value.message


@pytest.mark.parametrize("value", ["scripts/m", "scripts/m/run.sh", "scripts/m/../m/run.sh", ".", "missing/file"])
def test_paths_inside_the_package_are_resolved(package: Path, value: str) -> None:
    assert confined(package, value, where="w", field="scripts").is_relative_to(package.resolve())


@pytest.mark.parametrize("text", ["0-99999999", "99999999999999999999", "1024", "0-3,5000", "٣"])
def test_gpu_lists_are_bounded_before_expansion(text: str) -> None:
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(MadError):
        parse_gpu_list(text)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.monotonic() - started < 0.5 and peak < 1 << 20


@pytest.mark.parametrize(("field", "value"), [
    ("timeout", "1e300"), ("timeout", "1e400"), ("timeout", "nan"), ("n_gpus", "99999999999999999999"),
    ("n_gpus", "1025"), ("args", ["a"]), ("scripts", {"a": 1}), ("multiple_results", True), ("timeout", [1]),
])
def test_card_fields_out_of_bounds_or_of_the_wrong_type_name_the_field(field: str, value: object) -> None:
    raw = {"name": "m", "dockerfile": "docker/m", "scripts": "scripts/m/run.sh", field: value}
    with pytest.raises(MadError) as info:
        ModelCard.from_dict(raw, source="models.json")
    assert field in info.value.message and "card 'm'" in info.value.message


@pytest.mark.parametrize("name", ["has space", 'q"uote', "new\nline", "tab\there", "a:b", "a@b", "a..b", "a/./b"])
def test_card_names_that_cannot_be_image_names_are_refused(name: str) -> None:
    card = ModelCard.from_dict({"name": name, "dockerfile": "d", "scripts": "s"}, source="models.json")
    with pytest.raises(MadError, match="field 'name'"):
        check_image_name(card)


@pytest.mark.parametrize("registry", ["a b", "ftp://h", "h:99x", "h/Upper", "h//x", "", "x\ny"])
def test_malformed_registries_are_refused(registry: str) -> None:
    with pytest.raises(MadError, match="--mad-registry"):
        check_registry(registry)


@pytest.mark.parametrize("registry", ["localhost:5000", "http://localhost:5000/team/", "docker.io/org", "rocm"])
def test_registries_that_work_are_kept(registry: str) -> None:
    check_registry(registry)


def test_clashing_names_are_disambiguated_and_others_kept() -> None:
    names = ["a_b", "a/b", "dummy", "x/y"]
    stems = disambiguated(names, safe_name)
    assert stems["dummy"] == "dummy" and stems["x/y"] == "x_y"
    assert stems["a_b"] != stems["a/b"] and stems["a_b"].startswith("a_b-")
    suffixes = image_name_suffixes(["A", "a", "c"])
    assert suffixes["c"] == "" and suffixes["A"] != suffixes["a"] and all(suffixes[n] for n in ("A", "a"))


def test_secrets_split_from_specs_and_merged_back() -> None:
    context = {"gpu_vendor": "AMD", "docker_env_vars": {"HF_TOKEN": "t", "OK": "1"}, "DB_PASSWORD": "p",
               "MAD_SECRETS_X": "s", "empty_token": ""}
    public, hidden = split_secrets(context)
    assert public == {"gpu_vendor": "AMD", "docker_env_vars": {"OK": "1"}, "empty_token": ""}
    assert merge_secrets(public, hidden) == context
    assert secret_values(context, {"MAD_SECRETS_Y": "e", "PATH": "/bin"}) == {"t", "p", "s", "e"}
    assert redact('--mad-context={"HF_TOKEN": "tok"}', {"tok"}) == '--mad-context={"HF_TOKEN": "<redacted>"}'
    assert without_secrets({"PATH": "/bin", "MAD_SECRETS_A": "x", "GH_TOKEN": "y"}) == {"PATH": "/bin"}


def test_results_csv_is_streamed_and_capped(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    with path.open("w") as handle:
        handle.write("model,performance,metric\n")
        for index in range(MAX_RESULT_ROWS * 5):
            handle.write(f"m{index},1.5,ops\n")
    tracemalloc.start()
    with pytest.raises(MadError, match=f"more than {MAX_RESULT_ROWS} rows"):
        read_multiple_results(path, "card")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


def test_results_csv_with_a_runaway_field_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("model,performance,metric\n" + "x" * (1 << 20) + ",1,ops\n")
    with pytest.raises(MadError, match="not a readable CSV"):
        read_multiple_results(path, "card")
