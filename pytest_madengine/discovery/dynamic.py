"""Run a ``scripts/<dir>/get_models_json.py`` in its own process, once, with a timeout.

The child is ``python -m pytest_madengine.discovery._child`` with:
- cwd = the package root (madengine runs discovery from there);
- ``PYTHONPATH`` starting with our ``compat`` dir, so ``from madengine.utils.discover_models
  import CustomModel`` resolves to our shim even where the real madengine is installed (the
  same behaviour everywhere; the shim extends its package path with the real madengine, so
  its other modules stay importable);
- env ``MAD_CONTEXT`` = the run context as JSON (scripts may read it), the rest of the
  environment inherited.
Results are cached as JSON in ``cache_dir`` keyed by the script's bytes, its dir and the
context, so xdist workers read what the controller produced instead of running it again.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import MadError
from ..fileio import atomic_write_json

COMPAT_DIR = Path(__file__).with_name("compat")
CACHE_VERSION = "1"
STDERR_TAIL_LINES = 15


def run_dynamic(script: Path, *, dirname: str, root: Path, context: dict[str, Any],
                timeout: int = 120, cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """The raw card dicts ``list_models()`` returns (short names, paths as written)."""
    context_json = json.dumps(context, sort_keys=True, default=str)
    cache_file = _cache_file(cache_dir, script, dirname, context_json) if cache_dir else None
    if cache_file is not None:
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    cards = _run(script, dirname=dirname, root=root, context_json=context_json, timeout=timeout)
    if cache_file is not None:
        _write_cache(cache_file, cards)
    return cards


def cache_key(script_bytes: bytes, dirname: str, context_json: str) -> str:
    digest = hashlib.sha256()
    for part in (CACHE_VERSION.encode(), dirname.encode(), script_bytes, context_json.encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _cache_file(cache_dir: Path, script: Path, dirname: str, context_json: str) -> Path:
    key = cache_key(script.read_bytes(), dirname, context_json)
    return Path(cache_dir) / f"dynamic-{key}.json"


def _read_cache(path: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, list) else None


def _write_cache(path: Path, cards: list[dict[str, Any]]) -> None:
    atomic_write_json(path, cards, indent=None)  # a concurrent reader sees all or nothing


def child_env(context_json: str) -> dict[str, str]:
    env = dict(os.environ)
    own_root = str(Path(__file__).resolve().parents[2])  # dir holding pytest_madengine
    paths = [str(COMPAT_DIR), own_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(PYTHONPATH=os.pathsep.join(paths), MAD_CONTEXT=context_json,
               PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8")
    return env


def _run(script: Path, *, dirname: str, root: Path, context_json: str,
         timeout: int) -> list[dict[str, Any]]:
    argv = [sys.executable, "-m", "pytest_madengine.discovery._child", str(script), dirname]
    process = subprocess.Popen(argv, cwd=root, env=child_env(context_json), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise MadError(f"get_models_json.py hung for {timeout} s and was stopped", where=str(script),
                       fix="make list_models() return without waiting (no interactive prompts or "
                           "unreachable network clones), or raise --mad-discover-timeout") from None
    finally:
        _kill_group(process)  # programs the script started in the background go too
    return _parse(script, process.returncode, stdout, stderr.decode("utf-8", "replace"))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.returncode is None:
        process.communicate()


def _parse(script: Path, returncode: int, stdout: bytes, stderr: str) -> list[dict[str, Any]]:
    # Imported here: the child runs _child as __main__ and must not have it imported already.
    from ._child import CONTRACT_EXIT, MARKER

    if returncode == CONTRACT_EXIT and MARKER in stderr:
        problem = stderr.rsplit(MARKER, 1)[1].strip()
        raise MadError(problem, where=str(script),
                       fix="define list_models() returning a list of CustomModel objects "
                           "(from madengine.utils.discover_models import CustomModel) or dicts")
    if returncode != 0:
        raise MadError(f"get_models_json.py failed (exit code {returncode}); its last output:\n"
                       f"{_tail(stderr)}", where=str(script),
                       fix="fix the error above (the script runs with the package root as its "
                           "working directory and MAD_CONTEXT holding the context as JSON)")
    try:
        cards = json.loads(stdout.decode("utf-8"))
    except ValueError:
        raise MadError("list_models() output could not be read as JSON", where=str(script),
                       fix="return plain values (strings, numbers, lists, dicts) in the cards") from None
    if not isinstance(cards, list):
        raise MadError(f"list_models() gave a {type(cards).__name__}, not a list", where=str(script),
                       fix="return a list of CustomModel objects")
    return cards


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-STDERR_TAIL_LINES:]) or "    (no output)"
