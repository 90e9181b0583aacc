"""Per-run dirs under ``<log dir>/runs`` and run logs that belong to one run.

Each run works in ``runs/<model>-<run id>/`` (the model dir, result files, its log while it runs).
The dir holds an owner file (``.owner.json``: host and pid of the pytest process); a later session
removes dirs whose owner is gone (an interrupted or killed session), as it removes stale
containers. Dirs kept on purpose (``--mad-keep-model-dir``) lose their owner file and stay.

The log is written inside the run dir and moved to ``<log dir>/<model>.run.log`` (one
``os.replace``) once the run is judged, so two sessions on one package never write into each
other's log: each judges its own, and the last to finish leaves its log under the plain name.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from ..fileio import pid_alive
from .sysenv import env_csv_for
from .tools import tools_dir_for

OWNER_FILE = ".owner.json"
RUN_LOG = "run.log"


def mark_owned(work_dir: Path) -> None:
    """Record this process as the owner of ``work_dir`` (created before)."""
    (work_dir / OWNER_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def release_owned(work_dir: Path) -> None:
    """Keep ``work_dir`` for good: no later sweep removes it."""
    (work_dir / OWNER_FILE).unlink(missing_ok=True)


def sweep_stale_run_dirs(runs_dir: Path) -> int:
    """Remove run dirs of this host whose owning process is gone; how many were removed."""
    if not runs_dir.is_dir():
        return 0
    host, removed = socket.gethostname(), 0
    for entry in runs_dir.iterdir():
        owner = _owner(entry / OWNER_FILE)
        if owner is not None and owner.get("host") == host and not pid_alive(str(owner.get("pid", ""))):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def remove_run_dir(work_dir: Path, attempts: int = 3) -> bool:
    """Remove ``work_dir``; True when it is gone. A process that still writes into it (a container
    being killed) can make one pass fail with "directory not empty", so it is tried again."""
    for attempt in range(attempts):
        shutil.rmtree(work_dir, ignore_errors=True)
        if not work_dir.exists():
            return True
        time.sleep(0.1 * (attempt + 1))
    return False


def private_log(work_dir: Path) -> Path:
    """Where a run writes its log while it runs (inside its own run dir)."""
    return work_dir / RUN_LOG


def publish_log(private: Path, final: Path) -> dict[str, str]:
    """Move the judged run's log, and what a run keeps beside it (its tool outputs, its env CSV), to
    their plain names (``<model>.run.log``, ``<model>.run.tools/``, ``<model>_env.csv``).

    Returns {old path: new path} of what moved; what could not move (not written, or the log dir
    refuses) stays where it is.
    """
    moved: dict[str, str] = {}
    for old, new in ((private, final), (tools_dir_for(private), tools_dir_for(final)),
                     (env_csv_for(private), env_csv_for(final))):
        if not old.exists():
            continue
        try:
            if new.is_dir():
                shutil.rmtree(new)  # an earlier run's outputs of the same model
            os.replace(old, new)
        except OSError:
            continue
        moved[str(old)] = str(new)
    return moved


def _owner(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
