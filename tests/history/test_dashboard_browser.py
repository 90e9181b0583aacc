"""The dashboard in headless Chromium: it loads with no console message, draws its charts and its
filters work, for a small history and for 10,000 results (100 models × 100 sessions).

The browser and its ``chromium`` fixture come from ``tests/infra/browser.py``; the load time of the
10,000-result page is a figure in ``bench/dashboard_load.py``, not a timed test.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from pytest_madengine.history.dashboard import ChangePoint, render_dashboard, write_dashboard
from pytest_madengine.history.store import HistoryStore, SessionInfo
from pytest_madengine.records import FAILURE, SUCCESS, ModelResult
from pytest_madengine.results.reference_file import parse_references
from pytest_madengine.results.sinks.perfcsv import COLUMNS

from ..infra.browser import browse, console_lines
from .helpers import add_session, result

DAY = 86400.0
MAX_PAGE = 1_500_000


def page_data(html: str) -> dict[str, list[object]]:
    """The JSON the page embeds (what its script draws)."""
    found = re.search(r'<script type="application/json" id="dashboard-data">(.*?)</script>', html, re.DOTALL)
    assert found
    return json.loads(found.group(1))


def fill_hub(store: HistoryStore, models: int = 100, sessions: int = 100) -> None:
    """``models`` × ``sessions`` results: tags pyt (+ vllm on every third), two GPU architectures,
    one FAILURE in 41, a CI pipeline and build number per session."""
    for number in range(sessions):
        session = f"s{number:05d}"
        store.begin_session(SessionInfo(id=session, started=1_700_000_000 + number * 3600.0,
                                        git_commit=f"{number:040x}"))
        for index in range(models):
            row = dict.fromkeys(COLUMNS, "")
            status = FAILURE if (number * 7 + index) % 41 == 0 else SUCCESS
            row.update(model=f"model_{index:04d}", performance=f"{900 + (number * 7 + index) % 50:.1f}",
                       metric="tokens/s", gpu_architecture="gfx942" if index % 2 else "gfx90a", n_gpus="8",
                       nnodes="1", status=status, tags="pyt,vllm" if index % 3 == 0 else "pyt", pipeline="nightly",
                       build_number=str(1000 + number), build_duration="12.5", test_duration=str(30 + number % 5))
            store.add_result(session, ModelResult(model=row["model"], status=status, metric="tokens/s", rows=[row]))
        store.end_session(session, 1_700_000_000 + number * 3600.0 + 60)


def probe(page: Path, target: Path, steps: str) -> Path:
    """``page`` with a script that runs ``steps`` after load and puts the visible cards' models in the title."""
    script = ("<script>window.addEventListener('load', function () {" + steps +
              "document.title = Array.prototype.filter.call(document.querySelectorAll('.card'),"
              " function (c) { return !c.hidden; }).map(function (c) { return c.querySelector('h3')"
              ".firstChild.textContent.split(' · ')[0]; }).join('|') + '@' + location.hash; });</script></body>")
    target.write_text(page.read_text().replace("</body>", script))
    return target


def test_console_errors_are_seen(chromium: str, tmp_path: Path) -> None:
    """The check below would catch a broken page (a script error shows up as a console line)."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>missingFunction();</script></body></html>")
    done = browse(chromium, page, "--dump-dom")
    assert any("Uncaught ReferenceError" in line for line in console_lines(done.stderr)), done.stderr[-2000:]


def test_dashboard_loads_cleanly_and_draws_five_sessions_with_the_band(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "dashboard.html"
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "llama.run.log").write_text("performance: 812 tokens/s\n")
    with HistoryStore(tmp_path / "h.sqlite") as store:
        for day, value in enumerate(("900", "950", "1000", "880", "812")):
            status = FAILURE if value == "812" else "SUCCESS"
            item = result("llama", value, status=status, phase="performance", reason="9.8 % below")
            item.rows[0].update(pipeline="nightly", build_number=str(40 + day), test_duration="31.5")
            add_session(store, f"s{day + 1}", 1_700_000_000 + day * DAY, item)
        write_dashboard(store, page, references=parse_references({"llama": {"value": 900, "tolerance": "5%"}},
                                                                 "refs.yaml"),
                        changes=[ChangePoint("llama", "s4", 950.0, 846.0, 0.004)], logs=tmp_path / "logs")

    html = page.read_text()
    series = page_data(html)["series"][0]
    assert series["x"] == [0, 1, 2, 3, 4] and series["y"] == [900, 950, 1000, 880, 812]  # type: ignore[index]
    assert series["s"][-1] == FAILURE and series["ref"] == [900, 855, None]  # type: ignore[index]
    assert series["cp"] == [[3, 950, 846, 0.004]] and series["t"] == [31.5] * 5  # type: ignore[index]
    assert page_data(html)["sessions"][4][:4] == ["s5", "", "nightly", "44"]
    assert '<a href="logs/llama.run.log">log</a>' in html

    dom = browse(chromium, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom.stderr) == []
    card = dom.stdout[dom.stdout.index('id="card-0"'):]
    assert card.count("<canvas") == 2  # the trend and the duration chart
    strip = re.search(r'<div class="strip">(.*?)</div>', card).group(1)  # type: ignore[union-attr]
    assert re.findall(r'<span class="(\w+)"', strip) == ["SUCCESS"] * 4 + ["FAILURE"]
    assert "change point s4 · " in card and "nightly #43: 950 → 846 (p=0.004)" in card
    assert "llama · gfx942 × 8" in card

    shot = tmp_path / "dashboard.png"
    done = browse(chromium, page, f"--screenshot={shot}")
    assert done.returncode == 0 and console_lines(done.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a blank 1280×1000 page is a few KB


def test_repeats_give_a_distribution_and_old_sessions_are_left_out_with_a_note(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite") as store:
        for day in range(4):
            add_session(store, f"s{day}", 1_700_000_000 + day * DAY, result("bert", "10", "12"))
            store.add_result(f"s{day}", result("llama", str(100 + day)), repeat=0)
            store.add_result(f"s{day}", result("llama", str(110 + day)), repeat=1)
        html = render_dashboard(store, max_sessions=3)
    data = page_data(html)
    assert [session[0] for session in data["sessions"]] == ["s1", "s2", "s3"]
    llama = next(s for s in data["series"] if s["m"] == "llama")  # type: ignore[index]
    assert llama["y"] == [106, 107, 108] and llama["r"] == [[101, 111], [102, 112], [103, 113]]
    assert "Only the newest 3 of 4 sessions are drawn (1 older ones left out)." in html


def test_report_dashboard_links_logs_found_in_the_log_directory(tmp_path: Path) -> None:
    from pytest_madengine.__main__ import main

    with HistoryStore(tmp_path / "h.sqlite") as store:
        add_session(store, "s1", 1_700_000_000, result("llama", "900"), result("bert", "12"))
    (tmp_path / "mad_logs").mkdir()
    (tmp_path / "mad_logs" / "llama.run.log").write_text("performance: 900 tokens/s\n")
    output = tmp_path / "site" / "dashboard.html"
    assert main(["report", "dashboard", "--history", str(tmp_path / "h.sqlite"), "-o", str(output),
                 "--logs", str(tmp_path / "mad_logs")]) == 0
    html_text = output.read_text()
    assert html_text.count(">log</a>") == 1 and '<a href="../mad_logs/llama.run.log">log</a>' in html_text


@pytest.fixture(scope="module")
def hub_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub")
    with HistoryStore(folder / "h.sqlite") as store:
        fill_hub(store)
        references = parse_references({"model_*": {"value": 925, "tolerance": "5%"}}, "refs.yaml")
        return write_dashboard(store, folder / "dashboard.html", references=references)


def test_ten_thousand_results_make_a_small_page_that_loads_cleanly(chromium: str, hub_page: Path) -> None:
    size = hub_page.stat().st_size
    assert size <= MAX_PAGE, f"{size:,} bytes"
    data = page_data(hub_page.read_text())
    assert len(data["series"]) == 100 and sum(len(s["x"]) for s in data["series"]) == 10_000  # type: ignore[index]
    dom = browse(chromium, hub_page, "--dump-dom")
    assert dom.returncode == 0 and console_lines(dom.stderr) == [], console_lines(dom.stderr)
    assert re.search(r'data-ready="\d+"', dom.stdout)
    drawn = dom.stdout.count('data-drawn="1"')
    assert 8 <= drawn < 100  # the first cards at once, the rest when scrolled into view
    assert dom.stdout.count("<canvas") == 2 * drawn
    assert "100 of 100 series" in dom.stdout


def test_filters_by_search_tag_status_and_architecture(chromium: str, hub_page: Path, tmp_path: Path) -> None:
    steps = ("var q = document.getElementById('f-q'); q.value = 'MODEL_001'; q.dispatchEvent(new Event('input'));"
             "['f-tag', 'vllm', 'f-arch', 'gfx90a'].forEach(function (v, i, a) { if (i % 2 === 0) {"
             " var s = document.getElementById(v); s.value = a[i + 1]; s.dispatchEvent(new Event('change')); } });")
    dom = browse(chromium, probe(hub_page, tmp_path / "probe.html", steps), "--dump-dom")
    assert console_lines(dom.stderr) == []
    title = html.unescape(re.search(r"<title>(.*)</title>", dom.stdout).group(1))  # type: ignore[union-attr]
    models, state = title.split("@")
    # search (any case): model_0010 … model_0019; tag vllm: index % 3 == 0; gfx90a: even index
    assert models.split("|") == ["model_0012", "model_0018"]
    assert state == "#q=MODEL_001&tag=vllm&arch=gfx90a"
    assert 'id="shown">2 of 100 series' in dom.stdout


def test_a_linked_filter_state_is_applied_on_load(chromium: str, hub_page: Path, tmp_path: Path) -> None:
    series = page_data(hub_page.read_text())["series"]
    expected = [s["m"] for s in series if s["s"][-1] == FAILURE]  # type: ignore[index]
    assert expected
    dom = browse(chromium, probe(hub_page, tmp_path / "probe.html", ""), "--dump-dom", fragment="#status=FAILURE")
    assert console_lines(dom.stderr) == []
    title = html.unescape(re.search(r"<title>(.*)</title>", dom.stdout).group(1))  # type: ignore[union-attr]
    assert title == "|".join(expected) + "@#status=FAILURE"
