"""``python -m pytest_madengine report to-html|to-email`` and ``database upload`` — the HTML in
headless Chromium, the upload against a real MongoDB-protocol server (FerretDB, tests/infra/mongo.py)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_madengine.__main__ import main
from pytest_madengine.reports.html import chart_spec, read_table, write_email, write_html
from pytest_madengine.reports.mongo import redact_uri, resolve_uri, upload
from pytest_madengine.results.sinks.perfcsv import append_rows
from tests.infra.browser import browse, console_lines

REPO = Path(__file__).resolve().parents[2]


def perf_csv(directory: Path) -> Path:
    path = directory / "perf.csv"
    rows = [
        {"model": "llama", "performance": "812.4", "metric": "tokens/s", "status": "SUCCESS", "pipeline": "nightly",
         "build_number": "7", "n_gpus": "8", "test_duration": "30.10"},
        {"model": "bert", "performance": "95", "metric": "samples/s", "status": "SUCCESS", "pipeline": "nightly",
         "build_number": "7", "n_gpus": "1", "test_duration": "12.00"},
        {"model": "vllm_a", "performance": "1500.5", "metric": "tokens/s", "status": "SUCCESS",
         "pipeline": "nightly", "build_number": "7", "n_gpus": "8", "test_duration": "9.5"},
        {"model": "broken <b>", "performance": "", "metric": "", "status": "FAILURE", "pipeline": "nightly",
         "build_number": "7", "n_gpus": "1", "test_duration": "1.00"},
    ]
    append_rows(path, rows)
    return path


def test_to_html_page_has_table_and_chart_spec(tmp_path: Path) -> None:
    out = write_html(perf_csv(tmp_path))
    assert out == tmp_path / "perf.html"
    page = out.read_text()
    assert "broken &lt;b&gt;" in page and "<b>" not in page.split("<body>")[1].split("<script")[0]  # escaped
    assert page.count("<tr>") == 5 and 'id="chart-0"' in page and 'id="chart-1"' in page
    assert "https://" not in page.split("<script")[0]  # no external resource
    assert [(c["metric"], c["models"], c["values"], c["statuses"])  # type: ignore[index]
            for c in chart_spec(read_table(tmp_path / "perf.csv"))] == [
        ("samples/s", ["bert"], [95.0], ["SUCCESS"]), ("tokens/s", ["llama", "vllm_a"], [812.4, 1500.5],
                                                       ["SUCCESS", "SUCCESS"])]
    assert len(page.encode()) < 150_000  # uPlot (51 KB) instead of plotly.js (4.8 MB)


def test_a_large_csv_is_streamed_and_its_table_capped_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "perf.csv"
    rows = [{"model": f"m{i % 30}", "performance": str(i), "metric": "tokens/s", "status": "SUCCESS"}
            for i in range(3000)]
    append_rows(path, rows)
    table = read_table(path, max_rows=200)
    assert table.total == 3000 and len(table.rows) == 200 and table.rows[-1]["performance"] == "2999"
    assert table.bars[("tokens/s", "m0")].rows == 100 and table.bars[("tokens/s", "m0")].value == 2970
    page = write_html(path, max_rows=200).read_text()
    assert page.count("<tr>") == 201
    assert "Showing the newest 200 of 3,000 rows (the chart covers all of them)" in page
    mail = write_email(tmp_path, max_rows=200).read_text()
    assert mail.count("<tr>") == 201 and "Showing the newest 200 of 3,000 rows" in mail
    assert read_table(path).total == len(read_table(path).rows) == 3000  # uncapped for uploads


def test_cli_reports_and_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    perf_csv(tmp_path)
    assert main(["report", "to-html", str(tmp_path / "perf.csv"), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").is_file()
    assert main(["report", "to-email", str(tmp_path)]) == 0
    assert main(["report", "to-html", str(tmp_path / "absent.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"error: {tmp_path / 'absent.csv'}: the CSV file {tmp_path / 'absent.csv'} does not "
                           "exist. Fix: give a results file written by a session (perf.csv, perf_super.csv).")
    done = subprocess.run([sys.executable, "-m", "pytest_madengine", "report", "to-email", str(tmp_path / "none")],
                          capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 2 and "is not a directory" in done.stderr and "Traceback" not in done.stderr


def test_to_email_is_one_inline_styled_body_per_directory(tmp_path: Path) -> None:
    perf_csv(tmp_path)
    (tmp_path / "other.csv").write_text("model,value\nx,1\n")
    page = write_email(tmp_path).read_text()
    assert [m for m in re.findall(r"<h2[^>]*>([^<]+)</h2>", page)] == ["other", "perf"]  # sorted, by stem
    assert "<script" not in page and "<style" not in page and "<link" not in page
    assert 'style="border:1px solid' in page and "color:#b00020;font-weight:bold;" in page  # FAILURE status


def test_html_report_in_headless_chromium(chromium: str, tmp_path: Path) -> None:
    page = write_html(perf_csv(tmp_path))
    dom = browse(chromium, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom.stderr) == [], console_lines(dom.stderr)
    assert 'data-ready="' in dom.stdout  # the page script ran to its end
    for index in (0, 1):  # one bar chart per metric, drawn by uPlot into its element
        assert re.search(rf'id="chart-{index}"[^>]*><div class="uplot', dom.stdout), index
    assert dom.stdout.count("<canvas") == 2
    assert dom.stdout.count("<tr>") == 5
    shot = tmp_path / "report.png"
    done = browse(chromium, page, f"--screenshot={shot}")
    assert done.returncode == 0 and console_lines(done.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank page is a few KB


def test_sorting_by_a_header_click_orders_numbers_numerically(chromium: str, tmp_path: Path) -> None:
    page = write_html(perf_csv(tmp_path))
    probe = tmp_path / "probe.html"
    script = ("<script>window.addEventListener('load', function () {"
              "var th = Array.prototype.find.call(document.querySelectorAll('th'),"
              " function (h) { return h.textContent === 'performance'; });"
              "th.click(); th.click();"
              "var i = th.cellIndex; document.title = Array.prototype.map.call("
              "document.querySelectorAll('#results tbody tr'), function (r) { return r.cells[i].textContent; })"
              ".join('|'); });</script></body>")
    probe.write_text(page.read_text().replace("</body>", script))
    dom = browse(chromium, probe, "--dump-dom")
    assert console_lines(dom.stderr) == []
    assert "<title>|1500.5|812.4|95</title>" in dom.stdout or "<title>1500.5|812.4|95|</title>" in dom.stdout


def test_uri_resolution_and_redaction() -> None:
    assert redact_uri("mongodb://mad:s3cret@db:27017/x") == "mongodb://mad:***@db:27017/x"
    assert redact_uri("mongodb://db:27017") == "mongodb://db:27017"
    env = {"MONGO_HOST": "db", "MONGO_PORT": "27018", "MONGO_USER": "mad", "MONGO_PASSWORD": "p@ss"}
    assert resolve_uri(None, env) == "mongodb://mad:p%40ss@db:27018"
    assert resolve_uri(None, {"MAD_MONGO_URI": "mongodb://x"}) == "mongodb://x"
    assert resolve_uri("mongodb://given", env) == "mongodb://given"


def test_upload_to_an_unreachable_server_is_one_clear_line(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    perf_csv(tmp_path)
    code = main(["database", "upload", str(tmp_path / "perf.csv"), "--db", "mad", "-c", "perf", "--timeout", "1",
                 "--uri", "mongodb://mad:topsecret@127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: mad.perf: MongoDB at mongodb://mad:***@127.0.0.1:9 is unreachable")
    assert "topsecret" not in err and "Fix: start the server" in err


def test_upload_upserts_by_model_and_session_on_a_real_server(mongodb: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import pymongo

    path = perf_csv(tmp_path)
    # FerretDB 1.x with SQLite takes PLAIN credentials (any user): the password must stay hidden
    uri = mongodb.replace("mongodb://", "mongodb://mad:hidden-pw@") + "/?authMechanism=PLAIN"
    first = upload(path, uri=mongodb, database="mad", collection="perf", session="nightly-7")
    assert (first.inserted, first.updated, first.unchanged, first.key) == (4, 0, 0, ("model", "session"))
    assert upload(path, uri=mongodb, database="mad", collection="perf", session="nightly-7").unchanged == 4
    append_rows(path, [{"model": "llama", "performance": "900", "metric": "tokens/s", "status": "SUCCESS",
                        "pipeline": "nightly", "build_number": "8"}])  # the next CI build
    assert main(["database", "upload", str(path), "--db", "mad", "-c", "perf", "--uri", uri, "-k", "model,session",
                 "--session", "nightly-8"]) == 0
    output = capsys.readouterr()
    assert "4 inserted, 1 updated, 0 unchanged in mad.perf (key: model, session)" in output.out  # 2 llama rows
    assert "mad:***@" in output.out and "hidden-pw" not in output.out + output.err
    super_json = tmp_path / "perf_super.json"
    super_json.write_text(json.dumps([{"model": "llama", "performance": "812.4", "configs": {"tp": 8},
                                       "multi_results": None, "pipeline": "nightly", "build_number": "7"}]))
    assert upload(super_json, uri=mongodb, database="mad", collection="perf", session="nightly-7").updated == 1
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongodb)
    try:
        docs = {(d["model"], d["session"]): d for d in client.mad.perf.find({}, {"_id": 0})}
    finally:
        client.close()
    assert len(docs) == 8 and docs[("llama", "nightly-8")]["performance"] == 900
    assert docs[("llama", "nightly-7")]["configs"] == {"tp": 8}
    assert docs[("bert", "nightly-7")]["n_gpus"] == 1 and docs[("bert", "nightly-7")]["metric"] == "samples/s"


def madengine_perf_csv(directory: Path) -> Path:
    """20 rows of 14 models over three CI builds of one pipeline (the PARITY-GAPS row 35 shape)."""
    models = [f"model_{index}" for index in range(14)]
    rows = [{"model": name, "performance": f"{10 + index}.5", "metric": "ops", "status": "SUCCESS",
             "pipeline": "nightly", "build_number": str(build), "n_gpus": "1",
             "configs": '{"tp": 1}' if index == 0 else ""}
            for build, names in ((1, models), (2, models[:4]), (3, models[:2])) for index, name in enumerate(names)]
    path = directory / "perf.csv"
    append_rows(path, rows)
    return path


def test_madengine_database_form_upserts_on_madengines_key(mongodb: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import pymongo

    path = madengine_perf_csv(tmp_path)
    argv = ["database", "-f", str(path), "--db", "mad", "-c", "same_as_madengine", "--uri", mongodb]
    assert main([*argv, "--dry-run"]) == 0
    assert "dry run: 20 document(s) would go to mad.same_as_madengine (key: model)" in capsys.readouterr().out
    assert main([*argv, "--batch-size", "3"]) == 0
    assert "14 inserted, 6 updated, 0 unchanged in mad.same_as_madengine (key: model)" in capsys.readouterr().out
    assert main([*argv, "--no-upsert", "--no-index", "-c", "inserted"]) == 0
    assert main(["database", "upload", "--csv-file", str(path), "--db", "mad", "-c", "keyed", "--uri", mongodb,
                 "-k", "model,build_number"]) == 0
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(mongodb)
    try:
        same = list(client.mad.same_as_madengine.find({}, {"_id": 0}))
        assert client.mad.inserted.count_documents({}) == 20 and client.mad.keyed.count_documents({}) == 20
        indexes = {name for name in client.mad.same_as_madengine.index_information()}
        assert len(indexes) == 2 and not client.mad.inserted.index_information().keys() - {"_id_"}
    finally:
        client.close()
    assert len(same) == 14  # madengine: 14 documents (one per model, the last build's values)
    first = next(doc for doc in same if doc["model"] == "model_0")
    assert first["build_number"] == 3 and first["performance"] == 10.5 and first["configs"] == {"tp": 1}
    assert next(doc for doc in same if doc["model"] == "model_5")["configs"] is None  # empty cell: null


def test_madengines_key_detection() -> None:
    from pytest_madengine.reports.mongo import infer_unique_fields

    assert infer_unique_fields([{"model": "a", "pipeline": "p"}, {"model": "b", "pipeline": "p"}]) == ["model"]
    assert infer_unique_fields([{"model": "a", "pipeline": "p1"}, {"model": "a", "pipeline": "p2"}]) == ["pipeline"]
    assert infer_unique_fields([{"model": "a", "timestamp": 1, "pipeline": None},
                                {"model": "a", "timestamp": 1, "pipeline": None}]) == ["model", "timestamp"]
    assert infer_unique_fields([{"name": "x"}, {"name": "y"}]) == ["name"]


def test_report_commands_take_madengines_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    perf_csv(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "to-html", "--csv-file-path", str(tmp_path / "perf.csv")]) == 0
    assert (tmp_path / "perf.html").is_file()
    out = tmp_path / "results"
    out.mkdir()
    (tmp_path / "perf.csv").rename(out / "perf.csv")
    assert main(["report", "to-email", "--dir", str(out), "-o", "mail.html"]) == 0
    assert (out / "mail.html").is_file()  # madengine: --output is inside --directory
    assert main(["report", "to-email", str(out), "-o", "here.html"]) == 0
    assert (tmp_path / "here.html").is_file()  # the plugin's own form keeps -o relative to the CWD
    assert main(["report", "to-email", "--directory", str(out)]) == 0
    assert (out / "run_results.html").is_file()
