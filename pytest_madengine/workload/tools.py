"""Profiling tools (context ``tools`` + the package's ``scripts/common/tools.json``).

``tools.json`` = ``{"tools": {<name>: {"pre_scripts": [...], "cmd": "...", "env_vars": {...},
"post_scripts": [...]}}}``; the context lists ``{"name": <key>, "cmd"?: ..., "env_vars"?: ...}``.
Several tools stack as in madengine: a later tool's pre scripts run first and its post scripts
last, env vars merge (later wins), and each distinct ``cmd`` wraps the model command once, the
later tool outermost.
"""
from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MadError
from ..jsonfile import read_json, require_object
from .scripts import Script, package_scripts

TOOLS_FILE = Path("scripts") / "common" / "tools.json"


@dataclass
class Tooling:
    """The steps and env after every tool was applied."""

    model: list[str]
    pre: list[Script]
    post: list[Script]
    env: dict[str, str] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)


def load_tools(package_root: Path) -> dict[str, dict[str, Any]]:
    path = package_root / TOOLS_FILE
    if not path.is_file():
        raise MadError(f"the context asks for tools but {TOOLS_FILE} does not exist", where=str(path),
                       fix="add the package's tools.json, or drop 'tools' from the context")
    data = read_json(path, fix="fix the JSON syntax of the package's tools.json")
    tools = data.get("tools") if isinstance(data, dict) else None
    if not isinstance(tools, dict) or not all(isinstance(v, dict) for v in tools.values()):
        raise MadError("tools.json has no 'tools' object of tool objects", where=str(path),
                       fix='write {"tools": {"<name>": {"cmd": "...", "env_vars": {}, '
                           '"pre_scripts": [], "post_scripts": []}}}')
    return tools


def apply_tools(entries: list[dict[str, Any]] | None, package_root: Path, *, model: list[str],
                pre: list[Any], post: list[Any]) -> Tooling:
    """Wrap the model command and extend the pre/post scripts and env with every listed tool."""
    tooling = Tooling(model=list(model), pre=list(pre), post=list(post))
    if not entries:
        return tooling
    known = load_tools(package_root)
    prefixes: list[str] = []
    for entry in entries:
        name = str(entry.get("name"))
        spec = _tool_spec(name, known, package_root)
        where = f"{TOOLS_FILE}: tool {name!r}"
        tooling.pre = package_scripts(spec.get("pre_scripts"), package_root, f"{where}, pre_scripts") + tooling.pre
        tooling.post = tooling.post + package_scripts(spec.get("post_scripts"), package_root,
                                                      f"{where}, post_scripts")
        tooling.env.update(_env(spec.get("env_vars"), where))
        tooling.env.update(_env(entry.get("env_vars"), f"context 'tools' entry {name!r}"))
        cmd = str(entry.get("cmd") or spec.get("cmd") or "").strip()
        if cmd and cmd not in prefixes:
            prefixes.append(cmd)
            tooling.model = _split(cmd, where) + tooling.model
        tooling.applied.append(name)
    return tooling


def _tool_spec(name: str, known: dict[str, dict[str, Any]], package_root: Path) -> dict[str, Any]:
    if name in known:
        return known[name]
    near = difflib.get_close_matches(name, list(known), n=3)
    hint = f"did you mean {', '.join(near)}? " if near else ""
    raise MadError(f"tool {name!r} is not in {TOOLS_FILE}", where=str(package_root / TOOLS_FILE),
                   fix=f"{hint}known tools: {', '.join(sorted(known)) or 'none'}")


def _env(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    require_object(value, "env_vars", where=where,
                   fix='write "env_vars": {"NAME": "value"}')
    return {str(k): str(v) for k, v in value.items()}


def _split(cmd: str, where: str) -> list[str]:
    try:
        return shlex.split(cmd)
    except ValueError as exc:
        raise MadError(f"cmd {cmd!r} cannot be split ({exc})", where=where, fix="balance the quotes") from None
