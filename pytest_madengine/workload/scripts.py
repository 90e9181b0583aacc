"""Package scripts named by the context (pre/post scripts, tools): checked to exist, with args."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MadError
from .paths import confined

# One script entry as the context and tools.json write it: {"path": "...", "args": "..."}.
ScriptEntry = dict[str, object]


@dataclass
class Script:
    """A package script to copy into the model dir and run there."""

    path: Path
    args: str
    where: str  # names its origin in errors


def package_scripts(entries: list[ScriptEntry] | None, package_root: Path, where: str) -> list[Script]:
    """``[{"path": <package-relative file>, "args": "..."}]`` → scripts, each checked to exist."""
    scripts = []
    for entry in entries or []:
        text = str(entry.get("path", "")) if isinstance(entry, dict) else ""
        path = confined(package_root, text, where=where, field="path") if text else None
        if path is None or not path.is_file():
            raise MadError(f"entry {entry!r} does not name a file of the package", where=where,
                           fix='use {"path": "<package-relative script>", "args": "..."}')
        scripts.append(Script(path, str(entry.get("args") or ""), where))
    return scripts
