"""Package scripts named by the context (pre/post scripts, tools): checked to exist, with args.

madengine copies its own ``scripts/common`` into the package before a run, so contexts and tools.json
files written for it name ``scripts/common/pre_scripts/...``, ``post_scripts/...`` and ``tools/...``.
Such a path that the package itself lacks resolves to the plugin's shipped equivalent
(:data:`MADENGINE_COMMON`), or is refused naming the catalogue tool that does the job
(:data:`MADENGINE_REPLACED`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import MadError
from .paths import confined

# One script entry as the context and tools.json write it: {"path": "...", "args": "..."}.
ScriptEntry = dict[str, object]
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "presets" / "tools"
# madengine's scripts/common paths → the shipped script that does the same (same arguments).
MADENGINE_COMMON = {
    "scripts/common/pre_scripts/run_rocenv_tool.sh": "sys_env.sh",  # <output name> [lite|full]
    "scripts/common/tools/detect_therock.sh": "detect_therock.sh",
}
# madengine's scripts/common paths whose job a catalogue tool does (a wrapper, not a pre/post pair).
MADENGINE_REPLACED = {
    "scripts/common/pre_scripts/gpu_info_power_start.sh": "the tool gpu_info_power_profiler",
    "scripts/common/post_scripts/gpu_info_power_stop.sh": "the tool gpu_info_power_profiler",
    "scripts/common/pre_scripts/gpu_info_vram_start.sh": "the tool gpu_info_vram_profiler",
    "scripts/common/post_scripts/gpu_info_vram_stop.sh": "the tool gpu_info_vram_profiler",
    "scripts/common/pre_scripts/gpu_info_pre.sh": "the tool gpu_info_power_profiler or gpu_info_vram_profiler",
    "scripts/common/post_scripts/gpu_info_post.sh": "the tool gpu_info_power_profiler or gpu_info_vram_profiler",
    "scripts/common/pre_scripts/trace.sh": "a rocprof tool (rocprof, rocprofv3_*) or rpd",
    "scripts/common/post_scripts/trace.sh": "a rocprof tool (rocprof, rocprofv3_*) or rpd",
}


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
        if path is not None and not path.is_file():
            path = madengine_common(text, where) or path
        if path is None or not path.is_file():
            raise MadError(f"entry {entry!r} does not name a file of the package", where=where,
                           fix='use {"path": "<package-relative script>", "args": "..."}')
        scripts.append(Script(path, str(entry.get("args") or ""), where))
    return scripts


def madengine_common(text: str, where: str) -> Path | None:
    """The shipped equivalent of madengine's ``scripts/common/...`` path ``text`` (None: not one of
    them). Raises MadError for a path whose job a catalogue tool does."""
    key = text.strip().removeprefix("./").removeprefix("../")
    if key in MADENGINE_REPLACED:
        raise MadError(f"{key} is madengine's own script, not shipped with pytest-madengine", where=where,
                       fix=f"name {MADENGINE_REPLACED[key]} in the context 'tools' instead, or add the script to "
                           "the package")
    return SHIPPED_DIR / MADENGINE_COMMON[key] if key in MADENGINE_COMMON else None
