"""Profiling tools (context ``tools``): the package's ``scripts/common/tools.json`` over the catalogue shipped
with the plugin (``presets/tools/tools.json``).

``tools.json`` = ``{"tools": {<name>: {"pre_scripts": [...], "cmd": "...", "env_vars": {...},
"post_scripts": [...], "outputs"?: [...]}}}``; the context lists ``{"name": <key>, "cmd"?: ..., "env_vars"?: ...}``.
A package entry replaces the catalogue's entry of the same name; script paths resolve against the file's
own root (the package root, or the catalogue dir). A catalogue tool's helper scripts are copied into the
model dir as ``.mad_tools/`` (its ``cmd`` names them there). ``outputs`` (our key: model-dir-relative names
or globs) are what the target copies to the log dir after the run.
Several tools stack as in madengine: a later tool's pre scripts run first and its post scripts
last, env vars merge (later wins), and each distinct ``cmd`` wraps the model command once, the
later tool outermost. A multi-node run follows madengine's rule (``deployment/common.py:
configure_multi_node_profiling``, :func:`multi_node_context`).
"""
from __future__ import annotations

import difflib
import shlex
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MadError
from ..jsonfile import read_json, require_object
from .scripts import Script, package_scripts

TOOLS_FILE = Path("scripts") / "common" / "tools.json"
CATALOGUE_DIR = Path(__file__).resolve().parents[1] / "presets" / "tools"
MODEL_TOOLS_DIR = ".mad_tools"  # where the catalogue's helper scripts land in the model dir
# Tools that need rocprofv3 on several nodes (madengine's _ROCPROF_FAMILY_TOOL_NAMES).
ROCPROF_FAMILY = frozenset({
    "rocprof", "rocprof_hip_only", "rocprof_sys", "rocprofv3", "rocprofv3_compute", "rocprofv3_memory",
    "rocprofv3_communication", "rocprofv3_full", "rocprofv3_lightweight", "rocprofv3_agent",
    "rocprofv3_agent_counter", "rocprofv3_perfetto", "rocprofv3_api_overhead", "rocprofv3_pc_sampling",
})


class ToolsWarning(UserWarning):
    """Context tools left out of a run (madengine's multi-node profiling rule); names them and why."""


def multi_node_context(context: dict[str, Any], nnodes: int, *, rocprofv3: bool | None = None) -> dict[str, Any]:
    """``context`` with its ``tools`` as madengine runs them on ``nnodes`` nodes.

    One node: unchanged. Several, with ``rocprofv3`` on the submitting host (``rocprofv3`` None: looked
    up on PATH, where madengine looks): ``rocprof`` becomes ``rocprofv3`` (MPI-aware). Without it, the
    rocprof-family tools are left out with one :class:`ToolsWarning`; the other tools stay.
    """
    tools = context.get("tools")
    if nnodes <= 1 or not isinstance(tools, list) or not tools:
        return context
    available = shutil.which("rocprofv3") is not None if rocprofv3 is None else rocprofv3
    named = [(entry, str(entry.get("name")) if isinstance(entry, dict) else "") for entry in tools]
    if available:
        kept = [{**entry, "name": "rocprofv3"} if name == "rocprof" else entry for entry, name in named]
    else:
        kept = [entry for entry, name in named if name not in ROCPROF_FAMILY]
        dropped = [name for _, name in named if name in ROCPROF_FAMILY]
        if dropped:
            warnings.warn(ToolsWarning(
                f"context 'tools': {', '.join(dropped)} left out of this {nnodes}-node run: rocprofv3 (MPI-aware "
                "profiling) is not installed on this host, and madengine profiles several nodes only with it. "
                "Fix: install rocprofiler-sdk (ROCm 6.4.1 or later) where the session runs"), stacklevel=2)
    return {**context, "tools": kept}


@dataclass
class Tooling:
    """The steps and env after every tool was applied."""

    model: list[str]
    pre: list[Script]
    post: list[Script]
    env: dict[str, str] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # model-dir-relative names/globs to keep in the log dir
    needs_catalogue: bool = False  # a catalogue tool is applied: copy CATALOGUE_DIR to MODEL_TOOLS_DIR


@dataclass(frozen=True)
class ToolSpec:
    """One tools.json entry and the dir its script paths are relative to."""

    spec: dict[str, Any]
    root: Path
    where: str  # names the file and the entry in errors
    catalogue: bool


def _read_tools(path: Path) -> dict[str, dict[str, Any]]:
    data = read_json(path, fix="fix the JSON syntax of tools.json")
    tools = data.get("tools") if isinstance(data, dict) else None
    if not isinstance(tools, dict) or not all(isinstance(v, dict) for v in tools.values()):
        raise MadError("tools.json has no 'tools' object of tool objects", where=str(path),
                       fix='write {"tools": {"<name>": {"cmd": "...", "env_vars": {}, '
                           '"pre_scripts": [], "post_scripts": []}}}')
    return tools


def load_tools(package_root: Path, tools_file: Path | None = None) -> dict[str, ToolSpec]:
    """Every tool a context may name: the catalogue's, replaced by the package's of the same name.

    ``tools_file`` replaces the package's scripts/common/tools.json (madengine's ``--tools-config``);
    its script paths are package-relative, as madengine's.
    """
    known = {name: ToolSpec(spec, CATALOGUE_DIR, f"pytest-madengine tools catalogue: tool {name!r}", True)
             for name, spec in _read_tools(CATALOGUE_DIR / "tools.json").items()}
    path = Path(tools_file) if tools_file else package_root / TOOLS_FILE
    if path.is_file() or tools_file:
        shown = str(path) if tools_file else str(TOOLS_FILE)
        known.update({name: ToolSpec(spec, package_root, f"{shown}: tool {name!r}", False)
                      for name, spec in _read_tools(path).items()})
    return known


def apply_tools(entries: list[dict[str, Any]] | None, package_root: Path, *, model: list[str],
                pre: list[Any], post: list[Any], tools_file: Path | None = None) -> Tooling:
    """Wrap the model command and extend the pre/post scripts and env with every listed tool."""
    tooling = Tooling(model=list(model), pre=list(pre), post=list(post))
    if not entries:
        return tooling
    known = load_tools(package_root, tools_file)
    prefixes: list[str] = []
    for entry in entries:
        name = str(entry.get("name"))
        tool = _tool_spec(name, known, package_root)
        spec, where = tool.spec, tool.where
        tooling.pre = package_scripts(spec.get("pre_scripts"), tool.root, f"{where}, pre_scripts") + tooling.pre
        tooling.post = tooling.post + package_scripts(spec.get("post_scripts"), tool.root,
                                                      f"{where}, post_scripts")
        tooling.env.update(_env(spec.get("env_vars"), where))
        tooling.outputs += [str(item) for item in spec.get("outputs") or [] if str(item) not in tooling.outputs]
        tooling.needs_catalogue = tooling.needs_catalogue or tool.catalogue
        tooling.env.update(_env(entry.get("env_vars"), f"context 'tools' entry {name!r}"))
        cmd = str(entry.get("cmd") or spec.get("cmd") or "").strip()
        if cmd and cmd not in prefixes:
            prefixes.append(cmd)
            tooling.model = _split(cmd, where) + tooling.model
        tooling.applied.append(name)
    return tooling


def _tool_spec(name: str, known: dict[str, ToolSpec], package_root: Path) -> ToolSpec:
    if name in known:
        return known[name]
    near = difflib.get_close_matches(name, list(known), n=3)
    hint = f"did you mean {', '.join(near)}? " if near else ""
    raise MadError(f"tool {name!r} is neither in the package's {TOOLS_FILE} nor in pytest-madengine's catalogue",
                   where="context 'tools'", fix=f"{hint}known tools: {', '.join(sorted(known))}")


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


def tools_dir_for(log_path: Path) -> Path:
    """Where a run's tool outputs are kept: ``<model>.run.tools/`` beside ``<model>.run.log``."""
    return log_path.with_name(log_path.name.removesuffix(".log") + ".tools")


def keep_outputs(model_dir: Path, patterns: list[str], log_path: Path) -> list[Path]:
    """Copy the tool outputs found in the model dir next to the run log, into ``<log name>.tools/``.

    ``patterns`` are model-dir-relative names or globs (a tool's ``outputs``); a path outside the model dir
    is never copied. Returns the copied files and dirs (none found: [] and no dir is made).
    """
    found = sorted({path for pattern in patterns for path in model_dir.glob(pattern)
                    if path.resolve().is_relative_to(model_dir.resolve())})
    if not found:
        return []
    dest = tools_dir_for(log_path)
    dest.mkdir(parents=True, exist_ok=True)
    kept = []
    for path in found:
        target = dest / path.name
        if path.is_dir():
            shutil.copytree(path, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(path, target)
        kept.append(target)
    return kept
