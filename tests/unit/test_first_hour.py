"""Issue 20's building blocks without infrastructure: the text filter, build heartbeats, the
keep-alive exit mark, and the JUnit conforming pass (schema, classnames, node records)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_madengine.fileio import printable
from pytest_madengine.images import progress as progress_module
from pytest_madengine.images.progress import Progress, announced, last_step
from pytest_madengine.results.sinks.junit import (
    NodeCase,
    conform_session_xml,
    merge_junit,
    model_classname,
    write_node_junit,
)
from pytest_madengine.targets.local.keepalive import MARK, ModelExit, wrapped
from tests.junit_records import assert_valid_junit, model_properties


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b[1;31mERROR\x1b[0m: x", "ERROR: x"),  # CSI colours
    ("a\x1b]0;window title\x07b", "ab"),  # OSC title, BEL-terminated
    ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-terminated
    ("\x1b[2J\x1b[Hcleared", "cleared"),  # screen clear, cursor home
    ("bell\x07 nul\x00 del\x7f", "bell\\x07 nul\\x00 del\\x7f"),
    ("progress 10%\rprogress 20%\r\ndone", "progress 10%\nprogress 20%\ndone"),
    ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
    ("\ud800 lone surrogate", "\\xd800 lone surrogate"),
])
def test_printable_neutralises_what_a_terminal_or_xml_would_act_on(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    ET.fromstring(f"<a>{printable(raw)}</a>")  # always valid XML text


def test_build_heartbeat_says_elapsed_time_and_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(progress_module, "HEARTBEAT", 0.05)
    log = tmp_path / "x.build.log"
    log.write_text("Step 1/3 : FROM base\n ---> abc\nStep 2/3 : RUN make -j8\n")
    lines: list[str] = []
    with announced(Progress(lines.append), "m", "ci-m", "docker/m.Dockerfile", log):
        time.sleep(0.3)
    assert lines[0] == f"build m: image ci-m from docker/m.Dockerfile, log {log}"
    beats = lines[1:-1]
    assert len(beats) >= 2 and all(beat.startswith("build m: ") and beat.endswith(" s, Step 2/3 : RUN make -j8")
                                   for beat in beats)
    assert lines[-1] == "build m: done after 0 s"


def test_a_failed_build_ends_with_failed(tmp_path: Path) -> None:
    lines: list[str] = []
    with pytest.raises(RuntimeError), announced(Progress(lines.append), "m", "i", "d", tmp_path / "none.log"):
        raise RuntimeError("boom")
    assert lines[-1].startswith("build m: failed after ")


def test_last_step_of_a_buildkit_log(tmp_path: Path) -> None:
    log = tmp_path / "b.log"
    log.write_text("#5 [internal] load\n#7 [2/4] RUN pip install \x1b[1mtorch\x1b[0m\n#7 0.5 Collecting torch\n")
    assert last_step(log) == "#7 [2/4] RUN pip install torch"
    assert last_step(tmp_path / "absent.log") == ""


def test_keep_alive_mark_is_found_across_chunks() -> None:
    watch = ModelExit()
    text = f"model output\n{MARK}3; container kept running\n"
    assert not watch.feed(text[:20]) and not watch.feed(text[20:len("model output\n") + len(MARK) + 1])
    assert watch.feed(text[len("model output\n") + len(MARK) + 1:])
    assert watch.wait(0) == 3
    assert wrapped(["bash", "-c", "echo hi"])[-3:] == ["bash", "-c", "echo hi"]  # argv, never a shell string


def test_keep_alive_wait_times_out_without_the_mark() -> None:
    watch = ModelExit()
    watch.feed(f"echo '{MARK}' is printed by the wrapper only with a code\n")
    assert watch.wait(0.01) is None


@pytest.mark.parametrize(("package", "model", "classname"), [
    ("mad-hub", "dummy", "mad-hub.models"),
    ("mad-hub", "dummy2/model1", "mad-hub.dummy2"),
    ("MAD.v2", "a.b/c", "MAD_v2.a_b"),
])
def test_classnames_group_models_by_package_and_directory(package: str, model: str, classname: str) -> None:
    assert model_classname(package, model) == classname


SESSION_XML = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest"
 errors="0" failures="1" skipped="0" tests="2" time="1.0"><testcase classname="hub.models.json" name="pair"
 time="1.0"><properties><property name="performance" value="85" /><property name="status" value="FAILURE" />
 </properties><failure message="pair failed">pair failed</failure></testcase><testcase classname="tests.test_x"
 name="test_plain" time="0.1"><properties><property name="owner" value="me" /></properties></testcase></testsuite>
</testsuites>"""


def _node_files(tmp_path: Path) -> list[Path]:
    for rank, failure in ((0, ""), (1, "exit code 3 \x1b[31m(Error)\x1b[0m")):
        write_node_junit(tmp_path / f"node-{rank}.xml", NodeCase(
            suite="slurm job 7", name=f"pair [rank {rank}]", classname=f"slurm.node{rank + 1}", seconds=1.5,
            failure=failure, output=f"rank {rank} says \x1b]0;hi\x07hello", properties={"rank": str(rank)}))
    merge_junit([tmp_path / "node-0.xml", tmp_path / "node-1.xml"], tmp_path / "job.xml")
    return [tmp_path / "job.xml"]


def test_conformed_session_file_is_valid_and_counts_each_model_once(tmp_path: Path) -> None:
    xml = tmp_path / "junit.xml"
    xml.write_text(SESSION_XML)
    conform_session_xml(xml, {("hub.models.json", "pair"): "hub.models"}, node_files=_node_files(tmp_path))
    assert_valid_junit(xml)
    root = ET.parse(xml).getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["pytest", "slurm job 7"]
    assert sum(int(s.get("tests", "0")) for s in suites) == 2  # pair + test_plain; the nodes add none
    assert sum(int(s.get("failures", "0")) for s in suites) == 1
    pair = next(case for case in root.iter("testcase") if case.get("name") == "pair")
    assert pair.get("classname") == "hub.models" and pair.find("properties") is None
    assert pair.find("failure").get("type") == "mad.run"  # type: ignore[union-attr]
    assert model_properties(xml, "pair") == {"performance": "85", "status": "FAILURE"}
    plain = next(case for case in root.iter("testcase") if case.get("name") == "test_plain")
    assert plain.get("classname") == "tests.test_x" and plain.find("properties") is None  # valid, not renamed
    assert model_properties(xml, "test_plain") == {"owner": "me"}
    nodes = {p.get("name"): p.get("value") for p in suites[1].iter("property")}
    assert nodes["pair [rank 1]::classname"] == "slurm.node2" and nodes["pair [rank 1]::status"] == "failed"
    assert nodes["pair [rank 1]::failure"] == "exit code 3 (Error)" and nodes["pair [rank 0]::rank"] == "0"
    assert "rank 1 says hello" in (suites[1].findtext("system-out") or "")


def test_xunit1_keeps_testcase_properties(tmp_path: Path) -> None:
    xml = tmp_path / "junit.xml"
    xml.write_text(SESSION_XML)
    conform_session_xml(xml, {("hub.models.json", "pair"): "hub.models"}, family="xunit1")
    pair = next(case for case in ET.parse(xml).getroot().iter("testcase") if case.get("name") == "pair")
    assert [p.get("name") for p in pair.iter("property")] == ["performance", "status"]


def test_a_broken_node_file_is_warned_about_and_the_session_file_stays(tmp_path: Path) -> None:
    xml = tmp_path / "junit.xml"
    xml.write_text(SESSION_XML)
    broken = tmp_path / "broken.xml"
    broken.write_text("<testsuites><testsuite")
    with pytest.warns(UserWarning, match="broken.xml"):
        conform_session_xml(xml, {("hub.models.json", "pair"): "hub.models"}, node_files=[broken])
    assert [s.get("name") for s in ET.parse(xml).getroot().iter("testsuite")] == ["pytest"]
