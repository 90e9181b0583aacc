"""judge(): each failure phase, success rule, and the 29 perf.csv fields of every result kind."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.records import FAILURE, SKIPPED, SUCCESS, ImageRef
from pytest_madengine.results.judge import build_rows, failed_result, judge, skipped_result, tail
from pytest_madengine.results.sinks.perfcsv import COLUMNS
from pytest_madengine.workload.run import RunOutcome

IMAGE = ImageRef(name="ci-dummy_dummy.ubuntu.amd", dockerfile="docker/dummy.ubuntu.amd.Dockerfile",
                 base_docker="rocm/pytorch:latest", docker_sha="sha256:abc", build_duration=12.345)
CONTEXT = {"gpu_architecture": "gfx942", "machine_name": "node-a", "git_commit": "deadbeef",
           "pipeline": "from-the-context"}  # madengine reads the environment's ``pipeline``, not this


def make_card(**fields: object) -> ModelCard:
    raw = {"name": "dummy", "dockerfile": "docker/dummy", "scripts": "scripts/dummy/run.sh",
           "n_gpus": "1", "tags": ["dummies", "inference"], "args": "--bs 8",
           "training_precision": "fp16", "data": "", **fields}
    return ModelCard.from_dict(raw, source="models.json")


def outcome(tmp_path: Path, log: str, *, exit_code: int | None = 0, **kwargs: object) -> RunOutcome:
    log_path = tmp_path / "run.log"
    log_path.write_text(log)
    return RunOutcome(exit_code=exit_code, log_path=log_path, duration=3.14159, **kwargs)  # type: ignore[arg-type]


def run_judge(card: ModelCard, out: RunOutcome, **kwargs: object):
    options = {"image": IMAGE, "context": CONTEXT, "gpus": (2, 3)}
    options.update(kwargs)
    return judge(card, out, **options)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _build_number(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BUILD_NUMBER", "MAD_LAUNCHER", "MAD_LAUNCHER_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("pipeline", "nightly")


def test_success_row_field_by_field(tmp_path: Path) -> None:
    card = make_card(additional_docker_run_options="--shm-size 16G", data="imagenet")
    card = card.with_params((("batch", "16"),))
    out = outcome(tmp_path, "loading\nperformance: 812.4 tokens/s\n",
                  extra={"data_provider_type": "local", "data_size": "1024", "data_download_duration": "0.5"})
    result = run_judge(card, out, deployment_type="slurm", launcher="torchrun")
    assert (result.status, result.phase, result.reason) == (SUCCESS, "", "")
    assert (result.performance, result.metric) == ("812.4", "tokens/s")
    assert result.passed
    assert len(result.rows) == 1
    row = result.rows[0]
    assert list(row) == list(COLUMNS)
    assert row == {
        "model": "dummy", "n_gpus": "2", "nnodes": "1", "gpus_per_node": "2",
        "training_precision": "fp16", "pipeline": "nightly", "args": "--bs 8 --batch 16",
        "tags": "dummies,inference", "docker_file": "docker/dummy.ubuntu.amd.Dockerfile",
        "base_docker": "rocm/pytorch:latest", "docker_sha": "sha256:abc",
        "docker_image": "ci-dummy_dummy.ubuntu.amd", "git_commit": "deadbeef", "machine_name": "node-a",
        "deployment_type": "slurm", "launcher": "torchrun", "gpu_architecture": "gfx942",
        "performance": "812.4", "metric": "tokens/s", "relative_change": "", "status": "SUCCESS",
        "build_duration": "12.35", "test_duration": "3.14", "dataname": "imagenet",
        "data_provider_type": "local", "data_size": "1024", "data_download_duration": "0.5",
        "build_number": "0", "additional_docker_run_options": "--shm-size 16G",
    }
    assert result.image == IMAGE.name and result.gpus == (2, 3)
    assert result.build_duration == 12.345 and result.test_duration == 3.14159
    assert result.log_path == str(out.log_path)


def test_row_defaults_without_gpus_context_or_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILD_NUMBER", "77")
    card = make_card(n_gpus="-1")
    result = judge(card, outcome(tmp_path, "performance: 1 x\n"), image=IMAGE,
                   context={"docker_env_vars": {"MAD_SYSTEM_GPU_ARCHITECTURE": "gfx90a"}}, gpus=())
    row = result.rows[0]
    assert row["n_gpus"] == "-1" and row["gpus_per_node"] == "-1"  # the card's value, as madengine
    assert row["gpu_architecture"] == "gfx90a"
    assert row["pipeline"] == "nightly" and row["git_commit"] == ""
    assert row["machine_name"]  # falls back to the host name
    assert row["build_number"] == "77"
    assert row["deployment_type"] == "local" and row["launcher"] == "docker"  # madengine's local default
    assert row["data_provider_type"] == row["data_size"] == row["data_download_duration"] == ""


def test_multi_node_counts(tmp_path: Path) -> None:
    result = run_judge(make_card(), outcome(tmp_path, "performance: 1 x\n"), gpus=(0, 1, 2, 3), nnodes=2)
    row = result.rows[0]
    assert (row["n_gpus"], row["nnodes"], row["gpus_per_node"]) == ("8", "2", "4")


def test_nonzero_exit_is_run_failure_but_performance_kept(tmp_path: Path) -> None:
    result = run_judge(make_card(), outcome(tmp_path, "performance: 5 img/s\n", exit_code=3))
    assert (result.status, result.phase) == (FAILURE, "run")
    assert "exit code 3" in result.reason
    assert result.rows[0]["status"] == FAILURE
    assert result.rows[0]["performance"] == "5" and result.rows[0]["metric"] == "img/s"


def test_nonzero_exit_without_performance_says_both(tmp_path: Path) -> None:
    result = run_judge(make_card(), outcome(tmp_path, "boom\n", exit_code=1))
    assert result.phase == "run"
    assert "exit code 1" in result.reason and "No performance" in result.reason


def test_missing_exit_code_is_a_run_failure(tmp_path: Path) -> None:
    result = run_judge(make_card(), outcome(tmp_path, "performance: 5 x\n", exit_code=None))
    assert (result.status, result.phase) == (FAILURE, "run")
    assert "no exit code" in result.reason


def test_timeout(tmp_path: Path) -> None:
    out = outcome(tmp_path, "performance: 1 x\n", exit_code=137, timed_out=True, timeout=60)
    result = run_judge(make_card(), out)
    assert (result.status, result.phase) == (FAILURE, "timeout")
    assert "timed out after 60 s" in result.reason
    assert result.rows[0]["status"] == FAILURE


def test_infrastructure_error_is_run_phase_and_wins(tmp_path: Path) -> None:
    out = outcome(tmp_path, "", exit_code=None, error="the container could not start: no such image",
                  timed_out=True, timeout=5)
    result = run_judge(make_card(), out)
    assert (result.status, result.phase) == (FAILURE, "run")
    assert result.reason == "the container could not start: no such image"


def test_error_pattern_is_sanity_failure_with_performance_recorded(tmp_path: Path) -> None:
    log = "performance: 9.5 tokens/s\nRuntimeError: HIP error: invalid device\n"
    result = run_judge(make_card(), outcome(tmp_path, log))
    assert (result.status, result.phase) == (FAILURE, "sanity")
    assert "RuntimeError: HIP error: invalid device" in result.reason
    assert (result.performance, result.metric) == ("9.5", "tokens/s")
    assert result.rows[0]["performance"] == "9.5" and result.rows[0]["status"] == FAILURE


def test_error_scan_follows_the_context(tmp_path: Path) -> None:
    log = "performance: 9.5 tokens/s\nRuntimeError: x\n"
    disabled = run_judge(make_card(), outcome(tmp_path, log), context={"log_error_pattern_scan": False})
    assert disabled.status == SUCCESS
    benign = run_judge(make_card(), outcome(tmp_path, log), context={"log_error_benign_patterns": ["x"]})
    assert benign.status == SUCCESS


def test_no_performance_is_sanity_failure_naming_the_line_and_the_trap(tmp_path: Path) -> None:
    result = run_judge(make_card(), outcome(tmp_path, "done\n"))
    assert (result.status, result.phase) == (FAILURE, "sanity")
    assert "no performance found in the log" in result.reason
    assert "performance: <value> <metric>" in result.reason
    assert "multiple_results" in result.reason
    row = result.rows[0]
    assert row["model"] == "dummy" and row["performance"] == "" and row["status"] == FAILURE


def test_missing_log_file_is_no_performance(tmp_path: Path) -> None:
    out = RunOutcome(exit_code=0, log_path=tmp_path / "absent.log", duration=1.0)
    result = run_judge(make_card(), out)
    assert result.phase == "sanity" and result.log_tail == ""


def test_skipped_outcome(tmp_path: Path) -> None:
    out = outcome(tmp_path, "", skipped="--mad-skip-run given")
    result = run_judge(make_card(), out)
    assert (result.status, result.reason, result.phase) == (SKIPPED, "--mad-skip-run given", "")
    assert result.rows[0]["status"] == SKIPPED and result.rows[0]["performance"] == ""
    assert result.rows[0]["docker_image"] == IMAGE.name


def test_parse_hook_first_then_default(tmp_path: Path) -> None:
    seen = []

    def hook(card: ModelCard, text: str) -> tuple[str, str] | None:
        seen.append((card.name, text))
        return ("42", "custom/s") if "CUSTOM" in text else None

    result = run_judge(make_card(), outcome(tmp_path, "CUSTOM\nperformance: 1 x\n"), parse_hook=hook)
    assert (result.performance, result.metric) == ("42", "custom/s")
    assert seen == [("dummy", "CUSTOM\nperformance: 1 x\n")]
    result = run_judge(make_card(), outcome(tmp_path, "performance: 1 x\n"), parse_hook=hook)
    assert (result.performance, result.metric) == ("1", "x")


def test_log_tail_is_last_30_lines(tmp_path: Path) -> None:
    log = "".join(f"line {i}\n" for i in range(100)) + "performance: 1 x\n"
    result = run_judge(make_card(), outcome(tmp_path, log))
    lines = result.log_tail.splitlines()
    assert len(lines) == 30
    assert lines[0] == "line 71" and lines[-1] == "performance: 1 x"
    assert tail("a\nb\n", 5) == "a\nb" and tail("") == ""


def test_node_logs_are_searched_too(tmp_path: Path) -> None:
    node1 = tmp_path / "node1.log"
    node1.write_text("rank 1\nperformance: 77 samples/s\n")
    out = outcome(tmp_path, "rank 0 done\n", node_logs=[tmp_path / "run.log", node1])
    result = run_judge(make_card(), out, nnodes=2)
    assert result.status == SUCCESS and result.performance == "77"
    node1.write_text("ImportError: no module named apex\n")
    assert run_judge(make_card(), out, nnodes=2).phase == "sanity"


# --- multiple results ----------------------------------------------------------------------

def results_csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_multiple_results_rows(tmp_path: Path) -> None:
    card = make_card(multiple_results="perf_dummy.csv")
    csv_path = results_csv(tmp_path, "perf_dummy.csv",
                           "model,performance,metric,extra\nbs1,10,tok/s,a\nbs8,,tok/s,b\nbs16,80,tok/s,c\n")
    result = run_judge(card, outcome(tmp_path, "no performance line here\n", result_files=[csv_path]))
    assert result.status == SUCCESS
    assert [(r["model"], r["performance"], r["metric"], r["status"]) for r in result.rows] == [
        ("dummy_bs1", "10", "tok/s", SUCCESS),
        ("dummy_bs8", "", "tok/s", FAILURE),  # a row without a value is a failed measurement
        ("dummy_bs16", "80", "tok/s", SUCCESS),
    ]
    assert all(list(r)[:29] == list(COLUMNS) for r in result.rows)  # extra CSV columns follow the 29
    assert all(r["docker_image"] == IMAGE.name and r["n_gpus"] == "2" for r in result.rows)
    assert (result.performance, result.metric) == ("10", "tok/s")


def test_multiple_results_merge_the_node_files_fullest_first(tmp_path: Path) -> None:
    card = make_card(multiple_results="perf.csv")
    (tmp_path / "n0").mkdir()
    (tmp_path / "n1").mkdir()
    (tmp_path / "n2").mkdir()
    worker = results_csv(tmp_path / "n0", "perf.csv", "model,performance,metric\na,,x\nb,1,x\n")
    broken = results_csv(tmp_path / "n1", "perf.csv", "")
    master = results_csv(tmp_path / "n2", "perf.csv", "model,performance,metric\na,5,x\nb,6,x\n")
    result = run_judge(card, outcome(tmp_path, "", result_files=[worker, broken, master]))
    assert result.status == SUCCESS
    # the fullest file gives the rows; b has a number on two nodes: summed (unknown metric: madengine sums)
    assert [r["performance"] for r in result.rows] == ["5", "7"]
    assert result.properties["aggregation.b.per_node"] == "6,1"


def test_multiple_results_missing_file_is_sanity_failure_with_trap(tmp_path: Path) -> None:
    card = make_card(multiple_results="perf_dummy.csv")
    result = run_judge(card, outcome(tmp_path, "performance: 1 x\n"))
    assert (result.status, result.phase) == (FAILURE, "sanity")
    assert "perf_dummy.csv" in result.reason and "empty FAILURE row" in result.reason
    assert result.rows[0]["model"] == "dummy" and result.rows[0]["performance"] == ""


def test_multiple_results_bad_file_reason(tmp_path: Path) -> None:
    card = make_card(multiple_results="perf.csv")
    bad = results_csv(tmp_path, "perf.csv", "a,b\n1,2\n")
    result = run_judge(card, outcome(tmp_path, "", result_files=[bad]))
    assert result.phase == "sanity" and "'a', 'b'" in result.reason


# --- results that never ran ----------------------------------------------------------------

def test_failed_result_for_a_build_failure() -> None:
    result = failed_result(make_card(), phase="build", reason="docker build failed: step 3",
                           context=CONTEXT, gpus=(1,))
    assert (result.status, result.phase, result.reason) == (FAILURE, "build", "docker build failed: step 3")
    row = result.rows[0]
    assert list(row) == list(COLUMNS)
    assert row["status"] == FAILURE and row["performance"] == ""
    assert row["docker_image"] == "" and row["build_duration"] == "" and row["test_duration"] == ""
    assert row["n_gpus"] == "1" and row["gpu_architecture"] == "gfx942"
    assert result.gpus == (1,) and result.image == ""


def test_failed_result_with_image() -> None:
    result = failed_result(make_card(), phase="run", reason="x", image=IMAGE, context={})
    assert result.rows[0]["docker_sha"] == "sha256:abc" and result.rows[0]["build_duration"] == "12.35"
    assert result.build_duration == 12.345


def test_skipped_result() -> None:
    result = skipped_result(make_card(n_gpus="8"), "skip_gpu_arch matches gfx942", CONTEXT)
    assert (result.status, result.reason) == (SKIPPED, "skip_gpu_arch matches gfx942")
    row = result.rows[0]
    assert row["status"] == SKIPPED and row["n_gpus"] == "8" and row["model"] == "dummy"
    assert not result.passed


def test_build_rows_directly() -> None:
    rows = build_rows(make_card(), [("dummy_a", "1", "x"), ("dummy_b", "2", "y")], status=SUCCESS,
                      context=CONTEXT, test_duration=1.005)
    assert [r["model"] for r in rows] == ["dummy_a", "dummy_b"]
    assert rows[0]["test_duration"] in ("1.00", "1.01")  # float formatting, 2 decimals
    assert rows[1]["metric"] == "y" and rows[1]["docker_image"] == ""


def test_context_object_with_as_dict(tmp_path: Path) -> None:
    class Context:
        def as_dict(self) -> dict[str, str]:
            return {"gpu_architecture": "sm_90", "log_error_pattern_scan": "false"}

    result = run_judge(make_card(), outcome(tmp_path, "performance: 1 x\nFAILED\n"), context=Context())
    assert result.status == SUCCESS and result.rows[0]["gpu_architecture"] == "sm_90"


def test_result_round_trips_through_json(tmp_path: Path) -> None:
    from pytest_madengine.records import ModelResult

    result = run_judge(make_card(), outcome(tmp_path, "performance: 1 x\n"))
    assert ModelResult.from_json(result.to_json()) == result


def test_pipeline_is_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("pipeline")
    assert run_judge(make_card(), outcome(tmp_path, "performance: 1 x\n")).rows[0]["pipeline"] == ""


@pytest.mark.parametrize(("given", "deployment", "context", "env", "expected"), [
    ("", "local", {}, {}, "docker"),
    ("", "slurm", {}, {}, "torchrun"),
    ("", "slurm", {}, {"MAD_LAUNCHER_TYPE": "deepspeed"}, "deepspeed"),
    ("", "local", {"distributed": {"launcher": "vllm"}}, {}, "vllm"),
    ("", "local", {}, {"MAD_LAUNCHER": "megatron"}, "megatron"),
    ("torchrun", "local", {"distributed": {"launcher": "vllm"}}, {}, "torchrun"),
])
def test_launcher_follows_madengines_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str,
                                           deployment: str, context: dict, env: dict, expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run_judge(make_card(), outcome(tmp_path, "performance: 1 x\n"), context=context,
                       deployment_type=deployment, launcher=given)
    assert result.rows[0]["launcher"] == expected


def test_skipped_row_carries_the_reason_column(tmp_path: Path) -> None:
    result = skipped_result(make_card(), "skip_gpu_arch gfx90a matches this host", CONTEXT)
    row = result.rows[0]
    assert list(row)[:29] == list(COLUMNS) and list(row)[29:] == ["reason"]
    assert row["status"] == SKIPPED and row["reason"] == "skip_gpu_arch gfx90a matches this host"


def test_multiple_results_extra_columns_are_kept_after_the_29(tmp_path: Path) -> None:
    (tmp_path / "res.csv").write_text("model,performance,metric,temperature,test_duration\n"
                                      "a,1.5,tok/s,71,9.5\nb,2,tok/s,,\n")
    card = make_card(multiple_results="res.csv")
    out = outcome(tmp_path, "done\n", result_files=[tmp_path / "res.csv"])
    result = run_judge(card, out)
    assert [list(row)[29:] for row in result.rows] == [["temperature"], ["temperature"]]
    first, second = result.rows
    assert (first["model"], first["temperature"], first["test_duration"]) == ("dummy_a", "71", "9.5")
    assert (second["temperature"], second["test_duration"]) == ("", "3.14")  # the CSV's empty cell: ours


def test_non_finite_row_of_a_results_csv_fails_that_row_only(tmp_path: Path) -> None:
    card = make_card(multiple_results="perf_dummy.csv")
    csv_path = results_csv(tmp_path, "perf_dummy.csv",
                           "model,performance,metric\nbs1,10,tok/s\nbs8,nan,tok/s\nbs16,-inf,tok/s\nbs32,1e999,tok/s\n")
    result = run_judge(card, outcome(tmp_path, "", result_files=[csv_path]))
    assert result.status == SUCCESS
    assert [(r["model"], r["status"]) for r in result.rows] == [
        ("dummy_bs1", SUCCESS), ("dummy_bs8", FAILURE), ("dummy_bs16", FAILURE), ("dummy_bs32", FAILURE)]
    assert len(result.notes) == 3 and all("not a finite number" in note for note in result.notes)


def test_results_csv_with_no_finite_row_fails_the_run(tmp_path: Path) -> None:
    card = make_card(multiple_results="perf_dummy.csv")
    csv_path = results_csv(tmp_path, "perf_dummy.csv", "model,performance,metric\nbs1,nan,tok/s\nbs8,,tok/s\n")
    result = run_judge(card, outcome(tmp_path, "", result_files=[csv_path]))
    assert (result.status, result.phase) == (FAILURE, "sanity") and "not a finite number" in result.reason
    assert {r["status"] for r in result.rows} == {FAILURE}


def test_card_nnodes_is_the_perf_rows_node_count_fallback(tmp_path: Path) -> None:
    card = make_card(nnodes="2")
    row = run_judge(card, outcome(tmp_path, "performance: 5 ops\n")).rows[0]
    assert (row["nnodes"], row["gpus_per_node"], row["n_gpus"]) == ("2", "2", "4")  # madengine: nnodes × per node
    row = run_judge(card, outcome(tmp_path, "performance: 5 ops\n"), nnodes=3).rows[0]
    assert (row["nnodes"], row["n_gpus"]) == ("3", "6")  # the target's real node count wins
    assert run_judge(make_card(nnodes="x"), outcome(tmp_path, "performance: 5 ops\n")).rows[0]["nnodes"] == "1"
