"""perf.csv appends (header, existing header order, locking across processes) and perf_entry.csv."""
from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

from pytest_madengine.results.sinks.perfcsv import COLUMNS, append_rows, read_rows, write_entry


def row(model: str, **values: str) -> dict[str, str]:
    return {"model": model, "status": "SUCCESS", "performance": "1.5", "metric": "x/s", **values}


def test_columns_are_madengines_29_in_order() -> None:
    assert COLUMNS == (
        "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args", "tags",
        "docker_file", "base_docker", "docker_sha", "docker_image", "git_commit", "machine_name",
        "deployment_type", "launcher", "gpu_architecture", "performance", "metric", "relative_change",
        "status", "build_duration", "test_duration", "dataname", "data_provider_type", "data_size",
        "data_download_duration", "build_number", "additional_docker_run_options")
    assert len(COLUMNS) == 29


def test_new_file_gets_header_then_rows(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "perf.csv"
    append_rows(path, [row("a"), row("b", tags="x,y")])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 3
    rows = read_rows(path)
    assert [r["model"] for r in rows] == ["a", "b"]
    assert rows[1]["tags"] == "x,y"  # quoted, survives the comma
    assert rows[0]["n_gpus"] == ""  # missing keys are empty cells
    assert all(list(r) == list(COLUMNS) for r in rows)


def test_second_append_adds_no_header(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [row("a")])
    append_rows(path, [row("b")])
    text = path.read_text()
    assert text.count("model,n_gpus") == 1
    assert [r["model"] for r in read_rows(path)] == ["a", "b"]


def test_empty_existing_file_gets_header(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_text("")
    append_rows(path, [row("a")])
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)


def test_no_rows_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [])
    assert not path.exists()


def test_values_with_newlines_quotes_and_none(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    append_rows(path, [row("a", args='--x "1"\n--y 2', docker_sha=None)])  # type: ignore[arg-type]
    got = read_rows(path)[0]
    assert got["args"] == '--x "1"\n--y 2'
    assert got["docker_sha"] == ""


def test_existing_header_order_is_respected(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    reordered = list(reversed(COLUMNS))
    path.write_text(",".join(reordered) + "\n")
    append_rows(path, [row("a", n_gpus="8")])
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(reordered)
    got = read_rows(path)[0]
    assert list(got) == reordered
    assert got["model"] == "a" and got["n_gpus"] == "8" and got["status"] == "SUCCESS"


def test_a_header_lacking_columns_is_extended_under_the_lock_and_old_rows_padded(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_text("model,custom_column,performance,status\nold,keep,1,SUCCESS\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    append_rows(path, [row("a", temperature="71")])
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["model", "custom_column", "performance", "status"]  # the file's order kept
    assert header[4:] == ["metric", "temperature"]  # only columns with values, ours in order, then extras
    assert path.stat().st_ino != inode and oct(path.stat().st_mode & 0o777) == "0o640"  # replaced, mode kept
    append_rows(path, [row("b")])  # the file now has every column: plain append
    rows = read_rows(path)
    assert rows == [
        {"model": "old", "custom_column": "keep", "performance": "1", "status": "SUCCESS", "metric": "",
         "temperature": ""},
        {"model": "a", "custom_column": "", "performance": "1.5", "status": "SUCCESS", "metric": "x/s",
         "temperature": "71"},
        {"model": "b", "custom_column": "", "performance": "1.5", "status": "SUCCESS", "metric": "x/s",
         "temperature": ""},
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["perf.csv"]  # no temp file left


def test_existing_file_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_text("model,performance\nold,1")
    append_rows(path, [{"model": "new", "performance": "2"}])
    assert read_rows(path) == [{"model": "old", "performance": "1"}, {"model": "new", "performance": "2"}]


def test_header_with_bom_and_spaces(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    path.write_bytes("\ufeffmodel , performance\n".encode())
    append_rows(path, [{"model": "m", "performance": "3"}])
    assert path.read_text(encoding="utf-8-sig").splitlines()[1] == "m,3"


def test_write_entry_overwrites_with_this_sessions_rows(tmp_path: Path) -> None:
    path = tmp_path / "perf_entry.csv"
    write_entry(path, [row("old")])
    write_entry(path, [row("a"), row("b")])
    rows = read_rows(path)
    assert [r["model"] for r in rows] == ["a", "b"]
    assert list(rows[0]) == list(COLUMNS)
    assert [p.name for p in tmp_path.iterdir()] == ["perf_entry.csv"]  # no temp files left


def test_write_entry_with_no_rows_writes_header(tmp_path: Path) -> None:
    path = tmp_path / "perf_entry.csv"
    write_entry(path, [])
    assert path.read_text() == ",".join(COLUMNS) + "\n"


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from pytest_madengine.results.sinks.perfcsv import append_rows
    path, writer, start = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not start.exists():
        time.sleep(0.005)
    big = "x" * 6000  # rows longer than PIPE_BUF, so unlocked writes could tear
    extra = len(sys.argv) > 4  # each writer brings a column of its own at row 10
    def row(i):
        values = {"model": f"w{writer}_{i}", "args": big, "performance": str(i), "status": "SUCCESS"}
        if extra and i == 10:
            values[f"extra{writer}"] = f"e{writer}"
        return values
    for i in range(100):
        append_rows(path, [row(i)])
    append_rows(path, [row(i) for i in range(100, 150)])
    append_rows(path, [row(i) for i in range(150, 200)])
""")


def test_concurrent_processes_never_lose_or_interleave_rows(tmp_path: Path) -> None:
    path, start = tmp_path / "perf.csv", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), str(start)])
               for n in range(8)]
    start.touch()
    assert [proc.wait(timeout=120) for proc in writers] == [0] * 8
    with path.open(newline="") as handle:
        records = list(csv.reader(handle))
    assert records[0] == list(COLUMNS)
    body = records[1:]
    assert all(len(record) == 29 for record in body)
    models = [record[0] for record in body]
    assert sorted(models) == sorted(f"w{w}_{i}" for w in range(8) for i in range(200))
    assert all(record[6] == "x" * 6000 and record[20] == "SUCCESS" for record in body)
    for writer in range(8):  # each writer's rows keep their order
        own = [int(m.split("_")[1]) for m in models if m.startswith(f"w{writer}_")]
        assert own == list(range(200))


def test_concurrent_header_extensions_lose_no_row(tmp_path: Path) -> None:
    path, start = tmp_path / "perf.csv", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n), str(start), "extra"])
               for n in range(4)]
    start.touch()
    assert [proc.wait(timeout=120) for proc in writers] == [0] * 4
    rows = read_rows(path)
    assert list(rows[0])[:29] == list(COLUMNS) and sorted(list(rows[0])[29:]) == [f"extra{n}" for n in range(4)]
    assert sorted(r["model"] for r in rows) == sorted(f"w{w}_{i}" for w in range(4) for i in range(200))
    assert {r["model"]: r[f"extra{r['model'][1]}"] for r in rows if r["model"].endswith("_10")} == {
        f"w{n}_10": f"e{n}" for n in range(4)}
    assert sum(1 for r in rows for n in range(4) if r[f"extra{n}"]) == 4


def test_rows_perf_csv_lacks_go_to_the_fallback_and_only_those(tmp_path: Path) -> None:
    from pytest_madengine.records import ModelResult
    from pytest_madengine.results.sinks.perfcsv import PerfCsvSink

    perf = tmp_path / "out" / "perf.csv"
    sink = PerfCsvSink(perf, fallback_dir=tmp_path)
    sink.record(ModelResult(model="kept", status="SUCCESS", rows=[{"model": "kept", "performance": "1"}]))
    perf.rename(tmp_path / "kept.csv")
    perf.mkdir()  # perf.csv turns unwritable: appending to a directory fails
    try:
        sink.record(ModelResult(model="lost", status="SUCCESS", rows=[{"model": "lost", "performance": "2"}]))
    except OSError:
        pass
    lines = sink.finish()
    assert len(lines) == 1 and lines[0].startswith(f"{perf} could not be written"), lines
    fallback = Path(lines[0].split("it lacks are in")[1].strip())
    assert [row["model"] for row in read_rows(fallback)] == ["lost"]
    assert [row["model"] for row in read_rows(perf.with_name("perf_entry.csv"))] == ["kept", "lost"]
