"""Multi-node aggregation rules (madengine's) and the judge combining node logs and result files."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_madengine.cards import ModelCard
from pytest_madengine.results.aggregate import aggregate, aggregation_rule
from pytest_madengine.results.judge import judge
from pytest_madengine.workload.run import RunOutcome


@pytest.mark.parametrize("metric, rule", [
    ("samples_per_second", "sum"), ("tokens/s", "sum"), ("throughput_tok", "sum"), ("qps", "sum"),
    ("ms", "mean"), ("latency_ms", "mean"), ("ttft", "mean"), ("time_per_step", "mean"), ("loss", "mean"),
    ("peak_memory_gb", "max"), ("widgets", "sum"),
])
def test_rule_per_metric(metric: str, rule: str) -> None:
    assert aggregation_rule(metric) == rule


def test_aggregate_records_rule_and_spread() -> None:
    combined = aggregate(["100", "110"], "samples_per_second")
    assert combined is not None and combined.value == "210"
    props = combined.properties()
    assert props == {"aggregation.method": "sum", "aggregation.nodes": "2", "aggregation.per_node": "100,110",
                     "aggregation.stdev": "5", "aggregation.cv": "0.047619"}
    assert aggregate(["12", "oops"], "ms") is None  # one number is no aggregate


def card(**fields) -> ModelCard:
    return ModelCard.from_dict({"name": "m", "dockerfile": "docker/x", "scripts": "scripts/m/run.sh", **fields},
                               source="models.json")


def outcome_with_logs(tmp_path: Path, texts: list[str], files: list[Path] = ()) -> RunOutcome:
    logs = []
    for rank, text in enumerate(texts):
        logs.append(tmp_path / f"node-{rank}.log")
        logs[-1].write_text(text)
    main = tmp_path / "run.log"
    main.write_text("".join(texts))
    return RunOutcome(exit_code=0, log_path=main, duration=1.0, node_logs=logs, result_files=list(files))


def test_judge_sums_throughput_and_averages_latency_over_node_logs(tmp_path: Path) -> None:
    out = outcome_with_logs(tmp_path, ["performance: 100 samples_per_second\n", "performance: 110 samples_per_second\n"])
    result = judge(card(), out, image=None, context={}, gpus=(), nnodes=2)
    assert (result.performance, result.rows[0]["performance"]) == ("210", "210")
    assert result.properties["aggregation.method"] == "sum"
    out = outcome_with_logs(tmp_path, ["performance: 10 ms\n", "performance: 14 ms\n"])
    result = judge(card(), out, image=None, context={}, gpus=(), nnodes=2)
    assert result.performance == "12" and result.properties["aggregation.per_node"] == "10,14"


def test_judge_merges_node_result_files_by_model(tmp_path: Path) -> None:
    files = [tmp_path / "a.csv", tmp_path / "b.csv"]
    files[0].write_text("model,performance,metric\nx,1.5,tok/s\n")
    files[1].write_text("model,performance,metric\nx,2.5,tok/s\ny,7,ms\n")
    out = outcome_with_logs(tmp_path, ["", ""], files)
    result = judge(card(multiple_results="out.csv"), out, image=None, context={}, gpus=(), nnodes=2)
    assert [(row["model"], row["performance"]) for row in result.rows] == [("m_x", "4"), ("m_y", "7")]
    assert result.properties["aggregation.x.method"] == "sum"
