"""perf_entry.json, common_info.json, perf_super.json/.csv, perf_entry_super.* against golden files.

The golden files in ``tests/data/madengine-results/`` were written by hand from madengine's shapes
(``execution/container_runner.py``: run details → ``perf_entry.json``, ``common_info.json`` without
model/performance/metric/status; ``reporting/update_perf_super.py``: cumulative list, ``configs``,
``multi_results`` of the results CSV's other columns, ``null`` when none; CSV with those two as JSON
text). Set ``MAD_WRITE_GOLDEN=1`` to rewrite them after an intended change, then review the diff.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.errors import MadError
from pytest_madengine.records import ImageRef
from pytest_madengine.results.configs import load_configs
from pytest_madengine.results.judge import judge, skipped_result
from pytest_madengine.results.recorder import Recorder
from pytest_madengine.results.sinks.entries import PerfEntrySink
from pytest_madengine.results.sinks.superset import PerfSuperSink, load_super
from pytest_madengine.workload.run import RunOutcome

GOLDEN = Path(__file__).parent.parent / "data" / "madengine-results"
IMAGE = ImageRef(name="ci-vllm_vllm.ubuntu.amd", dockerfile="docker/vllm.ubuntu.amd.Dockerfile",
                 base_docker="rocm/vllm:latest", docker_sha="sha256:" + "b" * 64, build_duration=61.5)
CONTEXT = {"gpu_architecture": "gfx942", "machine_name": "node-a"}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("pipeline", "nightly")
    monkeypatch.setenv("BUILD_NUMBER", "77")
    for name in ("MAD_LAUNCHER", "MAD_LAUNCHER_TYPE"):
        monkeypatch.delenv(name, raising=False)


def package(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    (root / "scripts" / "vllm" / "configs").mkdir(parents=True)
    (root / "scripts" / "vllm" / "configs" / "bench.csv").write_text(
        "model,benchmark,tp,dtype\nllama-8b,throughput,1,fp16\nllama-70b,throughput,8,fp8\n\n")
    (root / "scripts" / "configs").mkdir()
    (root / "scripts" / "configs" / "single.json").write_text('{"batch": 8, "seq": [128, 256]}')
    return root


def card(**fields: object) -> ModelCard:
    raw = {"name": "vllm", "dockerfile": "docker/vllm", "scripts": "scripts/vllm/run.sh", "n_gpus": "8",
           "tags": ["vllm", "inference"], "training_precision": "fp16", **fields}
    return ModelCard.from_dict(raw, source="models.json")


def run(tmp_path: Path, the_card: ModelCard, log: str, files: list[Path] | None = None) -> RunOutcome:
    log_path = tmp_path / f"{the_card.name}.log"
    log_path.write_text(log)
    return RunOutcome(exit_code=0, log_path=log_path, duration=30.25, result_files=files or [])


def results(tmp_path: Path) -> list:
    root = package(tmp_path)
    single = card(name="llama", args="--config configs/single.json")
    first = judge(single, run(tmp_path, single, "performance: 812.4 tokens/s\n"), image=IMAGE, context=CONTEXT,
                  gpus=tuple(range(8)))
    first.configs = load_configs(single, root)
    (tmp_path / "res.csv").write_text("model,performance,metric,benchmark,temperature,status\n"
                                      "llama-8b,1500.5,tok/s,throughput,71,ok\nllama-70b,210,tok/s,throughput,,ok\n")
    multi = card(args="--config configs/bench.csv", multiple_results="res.csv")
    second = judge(multi, run(tmp_path, multi, "done\n", [tmp_path / "res.csv"]), image=IMAGE, context=CONTEXT,
                   gpus=tuple(range(8)))
    second.configs = load_configs(multi, root)
    third = skipped_result(card(name="old"), "skip_gpu_arch gfx942 matches this host (gfx942)", CONTEXT)
    return [first, second, third]


def check_golden(path: Path, name: str) -> None:
    golden = GOLDEN / name
    if os.environ.get("MAD_WRITE_GOLDEN"):
        golden.write_text(path.read_text())
    assert path.read_text() == golden.read_text(), f"{name} differs from its golden file"


def test_perf_entry_and_common_info_after_each_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    sink = PerfEntrySink(out)
    first, second, third = results(tmp_path)
    sink.record(first)
    check_golden(out / "perf_entry.json", "perf_entry.single.json")
    assert not (out / "common_info.json").exists()  # only multiple-results runs write it
    sink.record(second)
    check_golden(out / "perf_entry.json", "perf_entry.multiple.json")
    check_golden(out / "common_info.json", "common_info.json")
    sink.record(third)
    check_golden(out / "perf_entry.json", "perf_entry.skipped.json")


def test_perf_super_is_cumulative_across_sessions(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first, second, third = results(tmp_path)
    for batch in ([first, second], [third]):  # two sessions append to one file
        recorder = Recorder([PerfSuperSink(out)])
        for result in batch:
            recorder.record(result)
        assert recorder.finish()
    check_golden(out / "perf_super.json", "perf_super.json")
    check_golden(out / "perf_super.csv", "perf_super.csv")
    check_golden(out / "perf_entry_super.json", "perf_entry_super.json")
    check_golden(out / "perf_entry_super.csv", "perf_entry_super.csv")
    records = json.loads((out / "perf_super.json").read_text())
    assert [r["model"] for r in records] == ["llama", "vllm_llama-8b", "vllm_llama-70b", "old"]
    assert records[1]["multi_results"] == {"benchmark": "throughput", "temperature": 71}
    assert records[2]["multi_results"] == {"benchmark": "throughput"}
    assert records[2]["configs"]["tp"] == 8  # the CSV config row matching llama-70b
    with (out / "perf_super.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert json.loads(rows[1]["configs"]) == records[1]["configs"] and rows[3]["multi_results"] == ""


def test_a_damaged_perf_super_is_named_and_kept(tmp_path: Path) -> None:
    (tmp_path / "perf_super.json").write_text('{"not": "closed"')
    with pytest.raises(MadError, match=r"perf_super.json is not valid JSON .* Fix: move the damaged file"):
        load_super(tmp_path / "perf_super.json")
    recorder = Recorder([PerfSuperSink(tmp_path)])
    with pytest.warns(UserWarning, match="PerfSuperSink could not write.*perf_super.json"):
        recorder.record(results(tmp_path)[0])
    assert (tmp_path / "perf_super.json").read_text() == '{"not": "closed"'


def test_perf_super_appends_in_place_as_a_whole_dump_would_write_it(tmp_path: Path) -> None:
    first, second, third = results(tmp_path)
    path = tmp_path / "perf_super.json"
    path.write_text("[]\n")  # an empty list from another writer
    sink = PerfSuperSink(tmp_path)
    for result in (first, second, third, first):
        sink.record(result)
    records = json.loads(path.read_text())
    assert path.read_text() == json.dumps(records, indent=2) + "\n"  # layout of a whole-file dump
    assert [r["model"] for r in records] == ["llama", "vllm_llama-8b", "vllm_llama-70b", "old", "llama"]
    with (tmp_path / "perf_super.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["model"] for row in rows] == [r["model"] for r in records]
    assert rows[1]["multi_results"] and json.loads(rows[1]["multi_results"]) == records[1]["multi_results"]


def test_a_lone_madengine_record_becomes_a_list_and_a_list_without_its_bracket_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "perf_super.json"
    path.write_text(json.dumps({"model": "from-madengine", "performance": 1.0}))
    first = results(tmp_path)[0]
    PerfSuperSink(tmp_path).record(first)
    assert [r["model"] for r in json.loads(path.read_text())] == ["from-madengine", "llama"]
    path.write_text('[\n  {"model": "cut short"}\n')
    recorder = Recorder([PerfSuperSink(tmp_path)])
    with pytest.warns(UserWarning, match="perf_super.json"):
        recorder.record(first)
    assert path.read_text() == '[\n  {"model": "cut short"}\n'
def test_numbers_are_numbers_where_madengine_writes_numbers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first, second, third = results(tmp_path)
    sink = PerfSuperSink(out)
    for result in (first, second, third):
        sink.record(result)
    single, *multi = json.loads((out / "perf_super.json").read_text())[:3]
    assert (single["build_duration"], single["test_duration"]) == (61.5, 30.25)
    assert single["performance"] == "812.4"  # madengine's regex group: text in a single result
    assert [record["performance"] for record in multi] == [1500.5, 210]  # pandas: numbers
    assert single["n_gpus"] == "8" and single["data_download_duration"] == ""  # strings stay strings
