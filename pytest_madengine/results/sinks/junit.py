"""JUnit XML that CI reads right: each model's figures, its one-line system-out, merged node records.

Properties travel as pytest ``user_properties`` (they survive xdist). After pytest wrote
``--junitxml``, the controller's pass over the file (:func:`conform_session_xml`):

- adds each model's one-line result to its ``system-out`` (GitLab shows nothing else);
- gives each model's ``<failure>`` / ``<error>`` the ``type`` ``mad.<phase>`` (build, run, timeout,
  sanity, performance), so CI can filter build failures from run failures and timeouts;
- names the testcase's class ``<package>.<group>`` (``mad-hub.models`` for root cards,
  ``mad-hub.dummy2`` for ``dummy2/model1``), so Jenkins and GitLab trees group models by package;
- for ``junit_family = xunit2`` (pytest's default, whose schema ``junit-10.xsd`` allows no testcase
  ``<properties>``) moves each testcase's properties (a model's, or a conftest test's
  ``record_property``) into its suite's ``<properties>`` as
  ``<testcase name>::<property>`` (``dummy[ubuntu.amd]::performance``); ``xunit1`` keeps them on the testcase;
- appends the per-node / per-pod records of multi-node runs as one suite per SLURM or Kubernetes
  Job with no testcases of their own (``tests="0"``: a model counts once), each node's figures as
  ``<node testcase>::<property>`` suite properties and its log tail in the suite's ``system-out``.

Every text written is passed through ``fileio.printable`` (no ANSI colours or XML-forbidden
characters, which would make the file unparsable). junitparser is imported only inside the
functions that touch node files.
"""
from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import MadError
from ...fileio import atomic_write, printable
from ...records import FAILURE_TYPES, ModelResult

if TYPE_CHECKING:
    from junitparser import JUnitXml


def junit_properties(result: ModelResult) -> list[tuple[str, str]]:
    """The testcase properties of one model run (name, value), every value a string."""
    properties = [
        ("performance", result.performance),
        ("metric", result.metric),
        ("status", result.status),
        ("docker_image", result.image),
        ("gpu_architecture", _first_row_value(result, "gpu_architecture")),
        ("n_gpus", _first_row_value(result, "n_gpus")),
        ("build_duration", f"{result.build_duration:.2f}"),
        ("test_duration", f"{result.test_duration:.2f}"),
        ("gpus", ",".join(str(gpu) for gpu in result.gpus)),
    ]
    if result.rows and result.rows[0].get("docker_sha"):
        properties.append(("docker_sha", result.rows[0]["docker_sha"]))
    if result.phase:
        properties.append(("phase", result.phase))
    if len(result.rows) > 1:
        prefix = f"{result.model}_"
        for row in result.rows:
            name = row["model"].removeprefix(prefix)
            properties.append((f"performance.{name}", row["performance"]))
    properties += list(result.properties.items())
    return properties


def system_out_line(result: ModelResult) -> str:
    """``performance: 812.4 tokens/s (SUCCESS)``; the phase and reason when it failed."""
    if result.performance:
        line = f"performance: {result.performance} {result.metric}".rstrip()
    else:
        line = "performance: none"
    if len(result.rows) > 1:
        reported = sum(1 for row in result.rows if row["performance"])
        line += f" (+{reported - 1} more)" if reported > 1 else ""
    line += f" ({result.status})"
    if result.phase:
        line += f" [{result.phase}] {result.reason}"
    elif result.reason:
        line += f" {result.reason}"
    return line


def add_system_out(xml_path: Path, lines_by_testcase: dict[tuple[str, str], str],
                   types_by_testcase: dict[tuple[str, str], str] | None = None) -> None:
    """Append a line to the system-out of each listed testcase (classname, name), keeping its text,
    and set the ``type`` of its ``<failure>`` / ``<error>`` to ``types_by_testcase``'s value
    (``mad.build``, ``mad.run``, ``mad.timeout``, ``mad.sanity``, ``mad.performance``)."""
    if not lines_by_testcase:
        return
    types = types_by_testcase or {}
    xml = _load(xml_path)
    for suite in xml:
        for case in suite:
            key = (case.classname or "", case.name or "")
            line = lines_by_testcase.get(key)
            if line is None:
                continue
            existing = case.system_out
            line = printable(line)
            case.system_out = f"{existing.rstrip()}\n{line}" if existing and existing.strip() else line
            for outcome in case.result if key in types else ():
                if type(outcome).__name__ in ("Failure", "Error"):
                    outcome.type = types[key]
    xml.write(str(xml_path))


@dataclass
class NodeCase:
    """One node's share of a multi-node run, as a JUnit testcase of its own."""

    suite: str  # e.g. "slurm job 123"
    name: str  # e.g. "pair [rank 1]"
    classname: str  # e.g. "slurm.node2"
    seconds: float
    failure: str = ""  # '' when the node's run succeeded
    output: str = ""  # the tail of the node's log
    properties: dict[str, str] = field(default_factory=dict)


def write_node_junit(path: Path, case: NodeCase) -> None:
    """A JUnit file with one testsuite holding the node's testcase (merged later by the controller)."""
    from junitparser import Failure, JUnitXml, TestCase, TestSuite

    testcase = TestCase(printable(case.name), classname=printable(case.classname), time=round(case.seconds, 3))
    if case.failure:
        testcase.result = [Failure(printable(case.failure), type_=FAILURE_TYPES["run"])]
    if case.output:
        testcase.system_out = printable(case.output)
    suite = TestSuite(printable(case.suite))
    for name, value in case.properties.items():
        suite.add_property(printable(name), printable(value))
    suite.add_testcase(testcase)
    xml = JUnitXml()
    xml.add_testsuite(suite)
    xml.update_statistics()
    tmp = path.with_suffix(".tmp")
    xml.write(str(tmp))
    tmp.replace(path)


def merge_junit(paths: list[Path], out: Path) -> None:
    """Merge the JUnit files of several nodes / sessions into one ``testsuites`` file at ``out``."""
    from junitparser import JUnitXml

    merged = JUnitXml()
    for path in paths:
        merged += _load(Path(path))
    merged.update_statistics()
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.write(str(out))


def _load(path: Path) -> JUnitXml:
    from junitparser import JUnitXml, JUnitXmlError

    from ...errors import MadError

    try:
        return JUnitXml.fromfile(str(path))
    except FileNotFoundError:
        raise MadError(f"the JUnit file {path} does not exist", where=str(path),
                       fix="check the --junitxml paths given") from None
    except (SyntaxError, JUnitXmlError, OSError) as error:  # ParseError is a SyntaxError (lxml's too)
        raise MadError(f"the JUnit file {path} cannot be read ({error})", where=str(path),
                       fix="pass JUnit XML files written by pytest --junitxml") from None


def model_classname(package: str, model: str) -> str:
    """``<package>.<group>``: ``models`` for a root card, the card's directory for ``dir/name``;
    dots in either become ``_`` (Jenkins splits a classname at its last dot into package and class)."""
    group = model.split("/", 1)[0] if "/" in model else "models"
    return f"{package.replace('.', '_') or 'mad'}.{group.replace('.', '_')}"


def conform_session_xml(xml_path: Path, classnames: dict[tuple[str, str], str], *, family: str = "xunit2",
                        node_files: list[Path] | None = None) -> None:
    """Make pytest's JUnit file what the module docstring promises. ``classnames``: (classname,
    name) as pytest wrote the model's testcase → the classname it gets."""
    tree = _parse(xml_path)
    for suite in tree.getroot().iter("testsuite"):
        moved: list[tuple[str, str]] = []
        for case in suite.findall("testcase"):
            key = (case.get("classname") or "", case.get("name") or "")
            properties = case.find("properties")
            if family == "xunit2" and properties is not None:  # any test's (record_property): the file stays valid
                case.remove(properties)
                moved += [(f"{key[1]}::{prop.get('name')}", prop.get("value") or "") for prop in properties]
            if key not in classnames:
                continue
            case.set("classname", classnames[key])
            for outcome in case:
                if outcome.tag in ("failure", "error") and not outcome.get("type"):
                    outcome.set("type", FAILURE_TYPES["setup" if outcome.tag == "error" else "run"])
        if moved:
            _suite_properties(suite, moved)
    for node_suite in _node_suites(node_files or []):
        tree.getroot().append(node_suite)
    atomic_write(xml_path, ET.tostring(tree.getroot(), encoding="unicode", xml_declaration=True))


def _suite_properties(suite: ET.Element, items: list[tuple[str, str]]) -> None:
    properties = suite.find("properties")
    if properties is None:
        properties = ET.Element("properties")
        suite.insert(0, properties)
    for name, value in items:
        ET.SubElement(properties, "property", name=printable(name), value=printable(value))


def _node_suites(paths: list[Path]) -> list[ET.Element]:
    """One testcase-free suite per Job (SLURM job, Kubernetes Job) of the nodes' JUnit files."""
    by_name: dict[str, ET.Element] = {}
    for path in paths:
        try:
            root = _parse(path).getroot()
        except MadError as exc:  # a node wrote a broken file: its log and result still tell the story
            warnings.warn(exc.message, stacklevel=1)
            continue
        for suite in [root] if root.tag == "testsuite" else root.findall("testsuite"):
            name = suite.get("name") or path.stem
            summary = by_name.get(name)
            if summary is None:
                summary = by_name[name] = ET.Element("testsuite", name=name, tests="0", failures="0", errors="0",
                                                    skipped="0", time=suite.get("time") or "0")
            _summarise(suite, summary)
    return list(by_name.values())


def _summarise(suite: ET.Element, summary: ET.Element) -> None:
    """Fold one node suite's testcases into ``summary``'s properties and system-out."""
    cases = suite.findall("testcase")
    prefix = f"{cases[0].get('name')}::" if len(cases) == 1 else ""
    items = [(prefix + (prop.get("name") or ""), prop.get("value") or "") for prop in suite.iter("property")]
    out = summary.find("system-out")
    lines = [out.text or ""] if out is not None else []
    for case in cases:
        name = case.get("name") or ""
        failure = next((c.get("message") or c.text or "failed" for c in case if c.tag in ("failure", "error")), "")
        items += [(f"{name}::classname", case.get("classname") or ""), (f"{name}::time", case.get("time") or ""),
                  (f"{name}::status", "failed" if failure else "passed")]
        items += [(f"{name}::failure", failure)] if failure else []
        lines.append(f"--- {name} on {case.get('classname')}: {failure or 'passed'} ---")
        lines.append((case.findtext("system-out") or "").rstrip())
    _suite_properties(summary, items)
    if out is None:
        out = ET.SubElement(summary, "system-out")
    out.text = printable("\n".join(line for line in lines if line))


def _parse(path: Path) -> ET.ElementTree:
    try:
        return ET.parse(path)
    except FileNotFoundError:
        raise MadError(f"the JUnit file {path} does not exist", where=str(path),
                       fix="check the --junitxml paths given") from None
    except (ET.ParseError, OSError) as error:
        raise MadError(f"the JUnit file {path} cannot be read ({error})", where=str(path),
                       fix="pass JUnit XML files written by pytest --junitxml") from None


def _first_row_value(result: ModelResult, column: str) -> str:
    return result.rows[0].get(column, "") if result.rows else ""


def testcase_key(nodeid: str) -> tuple[str, str]:
    """(classname, name) of the testcase pytest's junitxml writes for ``nodeid``.

    pytest's convention: the path part with ``/`` as ``.`` and no ``.py``, then every ``::`` part
    but the last, joined with ``.``; the name is the last part with its parameters.
    ``hub/models.json::dummy[a.b]`` → (``hub.models.json``, ``dummy[a.b]``).
    """
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = names[0].replace("/", ".").removesuffix(".py")
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


class JUnitSink:
    """Conforms the session's ``--junitxml`` file (see the module docstring) once pytest wrote it.

    ``package``: the package directory's name (the classnames' first part); ``family``: the
    session's ``junit_family`` ini value."""

    def __init__(self, xml_path: Path | None, *, package: str = "mad", family: str = "xunit2") -> None:
        self.xml_path = xml_path
        self.package = package
        self.family = "xunit1" if family == "legacy" else family
        self.lines: dict[tuple[str, str], str] = {}
        self.types: dict[tuple[str, str], str] = {}
        self.classnames: dict[tuple[str, str], str] = {}
        self.node_files: list[Path] = []

    def record(self, result: ModelResult) -> None:
        key = testcase_key(result.nodeid)
        self.lines[key] = system_out_line(result)
        self.classnames[key] = model_classname(self.package, result.model)
        if result.phase in FAILURE_TYPES:
            self.types[key] = FAILURE_TYPES[result.phase]
        if result.node_junit:
            self.node_files.append(Path(result.node_junit))

    def finish(self) -> list[str]:
        if not self.lines or self.xml_path is None or not self.xml_path.is_file():
            return []
        add_system_out(self.xml_path, self.lines, self.types)
        nodes = [path for path in self.node_files if path.is_file()]
        conform_session_xml(self.xml_path, self.classnames, family=self.family, node_files=nodes)
        return []
