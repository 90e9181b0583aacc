"""data.json resolution: provider order, context override, datahomes, mounts and clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.workload.dataproviders import (
    DATA_STEP,
    DataPlan,
    Provider,
    data_fields,
    read_measurement,
    resolve_data,
)
from tests.docker.fakes import make_card

CORPUS_DATA = Path(__file__).resolve().parents[1] / "data" / "mad-hub-2026" / "data.json"


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "scripts/common/data").mkdir(parents=True)
    (root / "scripts/common/data/get.sh").write_text("echo get\n")
    (tmp_path / "host-data").mkdir()
    return root


def write_data(pkg: Path, data: dict) -> None:
    (pkg / "data.json").write_text(json.dumps(data))


def resolve(pkg: Path, data: str, context: dict | None = None) -> DataPlan:
    return resolve_data(make_card(data=data), context or {}, pkg)


def test_custom_comes_before_local_whatever_the_file_order(pkg: Path) -> None:
    write_data(pkg, {"d": {"local": {"path": "../host-data"}, "custom": {"path": "scripts/common/data/get.sh"}}})
    plan = resolve(pkg, "d")
    assert [p.kind for p in plan.providers] == ["custom"]
    assert plan.env == {"MAD_DATAHOME": "/data_dlm_0"} and plan.volumes == []


def test_a_missing_custom_script_falls_through_to_local(pkg: Path) -> None:
    write_data(pkg, {"d": {"custom": {"path": "scripts/common/data/absent.sh"}, "local": {"path": "../host-data"},
                           "aws": {"path": "s3://bucket/d"}}})
    plan = resolve(pkg, "d")
    assert [p.kind for p in plan.providers] == ["local"] and plan.steps == []
    assert plan.volumes == [f"{pkg.parent / 'host-data'}:/data_dlm_0:ro"]


def test_context_data_replaces_the_file_entry_of_that_dataname(pkg: Path) -> None:
    write_data(pkg, {"d": {"custom": {"path": "scripts/common/data/get.sh"}}, "e": {}})
    context = {"data": {"d": {"local": {"path": str(pkg.parent / "host-data"), "home": "/ctx"}}}}
    plan = resolve(pkg, "d,e", context)
    assert [(p.dataname, p.kind, p.home) for p in plan.providers] == [("d", "local", "/ctx_0")]


def test_context_data_alone_is_enough(pkg: Path) -> None:
    plan = resolve(pkg, "d", {"data": {"d": {"local": {"path": "../host-data"}}}})
    assert plan.env == {"MAD_DATAHOME": "/data_dlm_0"}


def test_comma_list_joins_datahomes_by_index(pkg: Path) -> None:
    write_data(pkg, {"a": {"local": {"path": "../host-data", "home": "/data"}}, "none": {"huggingface": {}},
                     "b": {"custom": {"path": "scripts/common/data/get.sh"}}})
    plan = resolve(pkg, "a, none ,b")
    assert plan.env == {"MAD_DATAHOME": "/data_0,/data_dlm_2"}
    assert [p.kind for p in plan.providers] == ["local", "custom"]
    assert data_fields(plan, pkg)["data_provider_type"] == "local,custom"


def test_empty_entry_means_no_provider(pkg: Path) -> None:
    write_data(pkg, {"huggingface": {}})
    plan = resolve(pkg, "huggingface")
    assert plan == DataPlan() and data_fields(plan, pkg) == {}


def test_real_mad_hub_entry_means_no_provider(pkg: Path) -> None:
    shutil.copyfile(CORPUS_DATA, pkg / "data.json")
    assert resolve(pkg, "huggingface") == DataPlan()


def test_no_data_json_and_no_context_means_no_provider(pkg: Path) -> None:
    assert resolve(pkg, "anything") == DataPlan()
    assert resolve(pkg, "") == DataPlan()


def test_missing_dataname_names_data_json_and_the_card_field(pkg: Path) -> None:
    write_data(pkg, {"other": {}})
    with pytest.raises(MadError) as error:
        resolve(pkg, "mine")
    message = error.value.message
    assert "dataname 'mine' is not defined in" in message and "data.json" in message
    assert "card 'm', field 'data'" in message and "Fix: add" in message


@pytest.mark.parametrize("kind", ["minio", "nas", "aws"])
def test_unsupported_provider_is_refused_clearly(pkg: Path, kind: str) -> None:
    write_data(pkg, {"d": {kind: {"path": "x"}, "local": {"path": "/no/such/dir"}}})
    with pytest.raises(MadError) as error:
        resolve(pkg, "d")
    message = error.value.message
    assert f"provider '{kind}' of dataname 'd' is not supported by pytest-madengine" in message
    assert "'local' provider" in message and "'custom' provider" in message


def test_valid_local_before_an_unsupported_provider_wins(pkg: Path) -> None:
    write_data(pkg, {"d": {"nas": {"path": "x"}, "local": {"path": "../host-data"}}})
    assert [p.kind for p in resolve(pkg, "d").providers] == ["local"]


@pytest.mark.parametrize("readwrite, mode", [(None, "ro"), ("false", "ro"), ("true", "rw"), (True, "rw")])
def test_local_mount_is_read_only_unless_readwrite(pkg: Path, readwrite: object, mode: str) -> None:
    config = {"path": str(pkg.parent / "host-data"), "home": "/in"}
    if readwrite is not None:
        config["readwrite"] = readwrite
    write_data(pkg, {"d": {"local": config}})
    assert resolve(pkg, "d").volumes == [f"{pkg.parent / 'host-data'}:/in_0:{mode}"]


def test_mirrorlocal_on_local_is_refused(pkg: Path) -> None:
    write_data(pkg, {"d": {"local": {"path": "../host-data", "mirrorlocal": "/tmp"}}})
    with pytest.raises(MadError, match="mirrorlocal cannot be used with the local provider"):
        resolve(pkg, "d")


def test_custom_step_passes_user_values_as_arguments_only(pkg: Path) -> None:
    write_data(pkg, {"d": {"custom": {"path": "scripts/common/data/get.sh", "args": "--x 'a b' '$(rm -rf /)'"}}})
    (step_kind, argv), = resolve(pkg, "d").steps
    assert step_kind == "pre"
    assert argv == ["bash", "-c", DATA_STEP, "mad-data", "/data_dlm_0", "/myworkspace/run_directory/.mad-data-0",
                    "/myworkspace/scripts/common/data/get.sh", "--x", "a b", "$(rm -rf /)"]


def test_custom_mirrorlocal_mounts_a_created_host_dir_read_write(pkg: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    write_data(pkg, {"d": {"custom": {"path": "scripts/common/data/get.sh", "mirrorlocal": str(mirror)}}})
    assert resolve(pkg, "d").volumes == [f"{mirror / 'd'}:/data_dlm_0:rw"]
    assert (mirror / "d").is_dir()


def test_custom_mirrorlocal_must_exist(pkg: Path) -> None:
    write_data(pkg, {"d": {"custom": {"path": "scripts/common/data/get.sh", "mirrorlocal": "/no/such/dir"}}})
    with pytest.raises(MadError, match="mirrorlocal '/no/such/dir' is not an existing directory"):
        resolve(pkg, "d")


@pytest.mark.parametrize("data, problem", [
    ({"d": {"local": {}}}, "'path' is missing"),
    ({"d": {"custom": {"path": "../outside.sh"}}}, "is not inside the package"),
    ({"d": {"local": {"path": "../host-data", "home": "rel"}}}, "is not an absolute container path"),
    ({"d": ["local"]}, "expected a JSON object, found list"),
    (["d"], "expected a JSON object, found list"),
])
def test_malformed_entries_are_clear_errors(pkg: Path, data: object, problem: str) -> None:
    (pkg / "data.json").write_text(json.dumps(data))
    with pytest.raises(MadError, match=problem):
        resolve(pkg, "d")


def test_data_fields_read_the_custom_measurement(tmp_path: Path) -> None:
    (tmp_path / ".mad-data-0").write_text("0 100.25 103.46 8.0K\n")
    plan = DataPlan(providers=[Provider("d", "custom", "/data_dlm_0", measure_file=".mad-data-0")])
    assert data_fields(plan, tmp_path) == {"data_provider_type": "custom", "data_size": "8.0K",
                                           "data_download_duration": "3.21"}


def test_data_fields_of_local_and_of_a_custom_step_that_never_ran(tmp_path: Path) -> None:
    local = Provider("d", "local", "/data_dlm_0", volume="/h:/data_dlm_0:ro")
    assert data_fields(DataPlan(providers=[local]), tmp_path) == {
        "data_provider_type": "local", "data_size": "", "data_download_duration": "0.00"}
    custom = Provider("e", "custom", "/data_dlm_1", measure_file=".mad-data-1")
    assert data_fields(DataPlan(providers=[local, custom]), tmp_path)["data_download_duration"] == ""
    assert read_measurement(tmp_path / "absent") == (None, "")


def test_data_config_file_and_force_mirror_local_as_madengine(pkg: Path, tmp_path: Path) -> None:
    write_data(pkg, {"d": {"local": {"path": "../host-data"}}})  # the package's data.json: not used
    other = tmp_path / "other-data.json"
    other.write_text(json.dumps({"d": {"custom": {"path": "scripts/common/data/get.sh"}},
                                 "e": {"local": {"path": str(tmp_path / "host-data")}}}))
    plan = resolve_data(make_card(data="d"), {}, pkg, data_file=other)
    assert [p.kind for p in plan.providers] == ["custom"] and plan.volumes == []
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    forced = resolve_data(make_card(data="d,e"), {}, pkg, data_file=other, force_mirror_local=str(mirror))
    assert f"{mirror / 'd'}:/data_dlm_0:rw" in forced.volumes  # custom: mirrored into DIR/<dataname>
    assert f"{tmp_path / 'host-data'}:/data_dlm_1:ro" in forced.volumes  # local keeps no mirrorlocal
