"""JUnit XML: a result's testcase properties, its one-line system-out, merging per-node files.

Properties travel as pytest ``user_properties`` (they survive xdist); GitLab ignores testcase
properties, so the one-line result also goes into ``system-out`` by post-processing the XML
pytest wrote; that pass also gives each failed model's ``<failure>`` / ``<error>`` the ``type``
``mad.<phase>`` (build, run, timeout, sanity, performance) so CI can filter build failures from
run failures and timeouts while pytest's exit codes stay as they are. junitparser is imported only
inside the functions that touch XML files.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import MadError
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

    testcase = TestCase(case.name, classname=case.classname, time=round(case.seconds, 3))
    if case.failure:
        testcase.result = [Failure(case.failure)]
    if case.output:
        testcase.system_out = case.output
    suite = TestSuite(case.suite)
    for name, value in case.properties.items():
        suite.add_property(name, value)
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
    """Adds each result's one-line ``system-out`` to the session's ``--junitxml`` file, and merges
    the per-node JUnit files of multi-node runs into it (one suite per job)."""

    def __init__(self, xml_path: Path | None) -> None:
        self.xml_path = xml_path
        self.lines: dict[tuple[str, str], str] = {}
        self.types: dict[tuple[str, str], str] = {}
        self.node_files: list[Path] = []

    def record(self, result: ModelResult) -> None:
        self.lines[testcase_key(result.nodeid)] = system_out_line(result)
        if result.phase in FAILURE_TYPES:
            self.types[testcase_key(result.nodeid)] = FAILURE_TYPES[result.phase]
        if result.node_junit:
            self.node_files.append(Path(result.node_junit))

    def finish(self) -> list[str]:
        if not self.lines or self.xml_path is None or not self.xml_path.is_file():
            return []
        add_system_out(self.xml_path, self.lines, self.types)
        nodes = [path for path in self.node_files if path.is_file()]
        if nodes:
            try:
                merge_junit([self.xml_path, *nodes], self.xml_path)
            except MadError as exc:  # a node wrote a broken file: keep the session's JUnit as it is
                warnings.warn(exc.message, stacklevel=1)
        return []
