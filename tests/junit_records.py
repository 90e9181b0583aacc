"""Reading a session's JUnit file as CI tools do (see ``results.sinks.junit``)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

SCHEMA = Path(__file__).parent / "data" / "junit" / "junit-10.xsd"


def model_properties(path: Path, name: str | None = None) -> dict[str, str]:
    """One model's properties: its testcase's own (``junit_family = xunit1``) or its suite's
    ``<name>::<property>`` items (xunit2, pytest's default). ``name``: the testcase name (default:
    the first testcase's)."""
    root = ET.parse(path).getroot()
    case = next(c for c in root.iter("testcase") if name is None or c.get("name") == name)
    name = case.get("name") or ""
    own = {prop.get("name") or "": prop.get("value") or "" for prop in case.iter("property")}
    prefix = f"{name}::"
    suite = {prop.get("name", "").removeprefix(prefix): prop.get("value") or ""
             for prop in root.iter("property") if prop.get("name", "").startswith(prefix)}
    return {**suite, **own}


def assert_valid_junit(path: Path) -> None:
    """Well-formed (``xml.etree``) and valid against pytest's ``junit-10.xsd`` (xunit2)."""
    import xmlschema

    ET.parse(path)
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(path))
