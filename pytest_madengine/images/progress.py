"""A build's signs of life for a CI log: one line when it starts, one every ``HEARTBEAT`` seconds
while it runs (elapsed time and the current Dockerfile step), one when it ends; with
``--mad-live-output`` also each line of its output. Lines are short and start with the model's name.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..fileio import printable

HEARTBEAT = 15.0  # seconds between a running build's "still alive" lines
# "Step 3/7 : RUN ..." (classic builder), "#7 [2/5] RUN ..." (BuildKit, --progress=plain)
_STEP = re.compile(r"^(Step \d+/\d+ : .+|#\d+ \[[^\]]+\] .+)")


@dataclass(frozen=True)
class Progress:
    """Where a build reports that it is alive: ``line`` gets short status lines, ``live``
    (``--mad-live-output``) each line of the build's output, or None."""

    line: Callable[[str], None]
    live: Callable[[str], None] | None = None


@contextmanager
def announced(progress: Progress | None, model: str, image: str, dockerfile: str, log_path: Path) -> Iterator[None]:
    """Around one build: the start line, the heartbeat thread, the end line (``done`` / ``failed``)."""
    if progress is None:
        yield
        return
    progress.line(f"build {model}: image {image} from {dockerfile}, log {log_path}")
    started, done = time.monotonic(), threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT):
            step = last_step(log_path)
            progress.line(f"build {model}: {time.monotonic() - started:.0f} s" + (f", {step}" if step else ""))

    ticker = threading.Thread(target=beat, name=f"build-progress-{model}", daemon=True)
    ticker.start()
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        done.set()
        ticker.join()
        progress.line(f"build {model}: {outcome} after {time.monotonic() - started:.0f} s")


def last_step(log_path: Path, width: int = 60) -> str:
    """The last Dockerfile step a build log shows, cut to ``width`` characters ('' when none)."""
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log_path.stat().st_size - 8192))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    steps = [line.strip() for line in text.splitlines() if _STEP.match(line.strip())]
    return printable(steps[-1])[:width] if steps else ""
