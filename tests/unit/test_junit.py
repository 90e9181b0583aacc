"""JUnit properties, the one-line system-out, post-processing pytest's XML, merging node files."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.records import FAILURE, SUCCESS, ModelResult
from pytest_madengine.results.sinks.junit import add_system_out, junit_properties, merge_junit, system_out_line


def make_result(**fields: object) -> ModelResult:
    base: dict[str, object] = {
        "model": "dummy", "status": SUCCESS, "performance": "812.4", "metric": "tokens/s",
        "rows": [{"model": "dummy", "performance": "812.4", "gpu_architecture": "gfx942", "n_gpus": "2"}],
        "image": "ci-dummy_dummy.ubuntu.amd", "gpus": (0, 5), "build_duration": 12.345, "test_duration": 3.0}
    base.update(fields)
    return ModelResult(**base)  # type: ignore[arg-type]


def test_properties_of_a_success() -> None:
    assert junit_properties(make_result()) == [
        ("performance", "812.4"), ("metric", "tokens/s"), ("status", "SUCCESS"),
        ("docker_image", "ci-dummy_dummy.ubuntu.amd"), ("gpu_architecture", "gfx942"), ("n_gpus", "2"),
        ("build_duration", "12.35"), ("test_duration", "3.00"), ("gpus", "0,5"),
    ]


def test_properties_of_a_failure_name_the_phase() -> None:
    props = dict(junit_properties(make_result(status=FAILURE, phase="timeout", performance="", metric="")))
    assert props["phase"] == "timeout" and props["status"] == FAILURE and props["performance"] == ""


def test_properties_of_multiple_results() -> None:
    rows = [{"model": "dummy_bs1", "performance": "10", "gpu_architecture": "gfx942", "n_gpus": "1"},
            {"model": "dummy_bs8", "performance": "", "gpu_architecture": "gfx942", "n_gpus": "1"}]
    props = junit_properties(make_result(rows=rows, performance="10"))
    assert ("performance.bs1", "10") in props and ("performance.bs8", "") in props
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in props)


def test_properties_without_rows() -> None:
    props = dict(junit_properties(make_result(rows=[], gpus=())))
    assert props["gpu_architecture"] == "" and props["n_gpus"] == "" and props["gpus"] == ""


def test_system_out_lines() -> None:
    assert system_out_line(make_result()) == "performance: 812.4 tokens/s (SUCCESS)"
    failed = make_result(status=FAILURE, phase="sanity", performance="", metric="", reason="no performance")
    assert system_out_line(failed) == "performance: none (FAILURE) [sanity] no performance"
    rows = [{"model": "a", "performance": "1"}, {"model": "b", "performance": "2"}, {"model": "c", "performance": ""}]
    assert system_out_line(make_result(rows=rows, performance="1", metric="x")) == "performance: 1 x (+1 more) (SUCCESS)"


# --- XML files written by a real pytest session --------------------------------------------

TEST_FILE = """
import json, pytest
from pytest_madengine.records import ModelResult
from pytest_madengine.results.sinks.junit import junit_properties

RESULT = ModelResult.from_json(json.loads({result!r}))

def test_dummy(request):
    request.node.user_properties.extend(junit_properties(RESULT))
    print("captured model output")

def test_plain():
    pass

def test_broken(request):
    request.node.user_properties.append(("status", "FAILURE"))
    assert 0, "model failed"
"""


def write_junit(pytester: pytest.Pytester, name: str, result: ModelResult,
                logging: str = "system-out") -> Path:
    import json

    pytester.makepyfile(**{name: TEST_FILE.format(result=json.dumps(result.to_json()))})
    xml = pytester.path / f"{name}.xml"
    run = pytester.runpytest(f"{name}.py", f"--junitxml={xml}", "-o", f"junit_logging={logging}", "-p",
                             "no:cacheprovider")
    run.assert_outcomes(passed=2, failed=1)
    return xml


def test_add_system_out_keeps_output_and_properties(pytester: pytest.Pytester) -> None:
    result = make_result()
    xml = write_junit(pytester, "test_models", result)
    add_system_out(xml, {("test_models", "test_dummy"): system_out_line(result),
                         ("test_models", "test_plain"): "performance: none (SKIPPED)",
                         ("test_models", "absent"): "ignored"})
    root = ET.parse(xml).getroot()
    assert_junit_schema(root)
    cases = {case.get("name"): case for case in root.iter("testcase")}
    dummy = cases["test_dummy"]
    out = dummy.find("system-out").text  # type: ignore[union-attr]
    assert "captured model output" in out and out.rstrip().endswith("performance: 812.4 tokens/s (SUCCESS)")
    props = [(p.get("name"), p.get("value")) for p in dummy.iter("property")]
    assert props == junit_properties(result)
    plain = cases["test_plain"].find("system-out").text  # type: ignore[union-attr]
    assert plain.endswith("\nperformance: none (SKIPPED)")  # after pytest's (empty) capture header
    assert cases["test_broken"].find("failure") is not None  # untouched
    assert len(cases["test_broken"].findall("system-out")) == 1


def test_add_system_out_twice_appends(pytester: pytest.Pytester) -> None:
    xml = write_junit(pytester, "test_twice", make_result(), logging="no")
    add_system_out(xml, {("test_twice", "test_plain"): "one"})
    add_system_out(xml, {("test_twice", "test_plain"): "two"})
    case = next(c for c in ET.parse(xml).getroot().iter("testcase") if c.get("name") == "test_plain")
    assert case.find("system-out").text == "one\ntwo"  # type: ignore[union-attr]


def test_merge_junit_of_two_nodes(pytester: pytest.Pytester, tmp_path: Path) -> None:
    node0 = write_junit(pytester, "test_node0", make_result())
    node1 = write_junit(pytester, "test_node1", make_result(performance="900"))
    out = tmp_path / "merged" / "junit.xml"
    merge_junit([node0, node1], out)
    root = ET.parse(out).getroot()
    assert_junit_schema(root)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "2", "0")
    names = sorted((c.get("classname"), c.get("name")) for c in root.iter("testcase"))
    assert names == sorted((f"test_node{n}", t) for n in (0, 1) for t in ("test_dummy", "test_plain", "test_broken"))
    perf = [p.get("value") for p in root.iter("property") if p.get("name") == "performance"]
    assert sorted(perf) == ["812.4", "900"]


def test_broken_files_raise_mad_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<html>nope")
    with pytest.raises(MadError, match="bad.xml"):
        merge_junit([bad], tmp_path / "out.xml")
    with pytest.raises(MadError, match="does not exist"):
        add_system_out(tmp_path / "absent.xml", {("a", "b"): "x"})


# --- schema check ---------------------------------------------------------------------------
# The rules of the widely used JUnit schema (junit-10.xsd, as in pytest's own tests), written out
# here: which children each element may have and which attributes it must have. One deliberate
# addition: <properties> inside <testcase>, which pytest writes for user_properties and Jenkins,
# GitLab and junitparser read, although junit-10.xsd predates it.

CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {"properties", "skipped", "error", "failure", "rerunFailure", "rerunError",
                 "flakyFailure", "flakyError", "system-out", "system-err"},
    "properties": {"property"},
}
REQUIRED = {"testsuite": {"name", "tests", "failures", "errors"}, "testcase": {"name"},
            "property": {"name", "value"}}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]{0,3})?")


KNOWN = set(CHILDREN) | set(REQUIRED) | set().union(*CHILDREN.values())
LEAVES = {"property", "system-out", "system-err", "skipped", "error", "failure"}


def assert_junit_schema(element: ET.Element) -> None:
    assert element.tag in KNOWN, element.tag
    missing = REQUIRED.get(element.tag, set()) - set(element.attrib)
    assert not missing, f"<{element.tag}> lacks {missing}"
    if element.tag in ("testsuites", "testsuite") and element.get("time") is not None:
        assert SUREFIRE_TIME.fullmatch(element.get("time", "")), element.get("time")
    if element.tag in LEAVES:
        assert len(element) == 0, f"<{element.tag}> has child elements"
    for child in element:
        assert child.tag in CHILDREN.get(element.tag, set()), f"<{child.tag}> inside <{element.tag}>"
        assert_junit_schema(child)


def test_node_junit_files_merge_into_one_suite_per_job(tmp_path: Path) -> None:
    from junitparser import JUnitXml

    from pytest_madengine.results.sinks.junit import NodeCase, write_node_junit

    write_node_junit(tmp_path / "node-0.xml", NodeCase(
        suite="slurm job 7", name="pair [rank 0]", classname="slurm.node1", seconds=1.5,
        output="rank=0 of 2", properties={"rank": "0"}))
    write_node_junit(tmp_path / "node-1.xml", NodeCase(
        suite="slurm job 7", name="pair [rank 1]", classname="slurm.node2", seconds=2.0, failure="exit code 3"))
    merge_junit([tmp_path / "node-0.xml", tmp_path / "node-1.xml"], tmp_path / "junit.xml")
    xml = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    cases = {case.name: case for suite in xml for case in suite}
    assert sorted(cases) == ["pair [rank 0]", "pair [rank 1]"]
    assert cases["pair [rank 0]"].is_passed and cases["pair [rank 0]"].system_out == "rank=0 of 2"
    assert cases["pair [rank 1]"].result[0].message == "exit code 3"
    assert (xml.tests, xml.failures) == (2, 1)


def test_failure_type_names_the_phase_so_ci_can_filter(pytester: pytest.Pytester) -> None:
    xml = write_junit(pytester, "test_typed", make_result())
    add_system_out(xml, {("test_typed", "test_broken"): "performance: none (FAILURE) [build] no image",
                         ("test_typed", "test_plain"): "performance: 1 x (SUCCESS)"},
                   {("test_typed", "test_broken"): "mad.build", ("test_typed", "test_plain"): "mad.run"})
    root = ET.parse(xml).getroot()
    assert_junit_schema(root)
    cases = {case.get("name"): case for case in root.iter("testcase")}
    failure = cases["test_broken"].find("failure")
    assert failure is not None and failure.get("type") == "mad.build"
    assert failure.get("message")  # pytest's message kept
    assert cases["test_plain"].find("failure") is None  # a passed test gets no failure element
