"""Why a gang failed: the ranks of one multi-node run fail as one, and the reason is the rank that
failed first, not the ranks the target (SLURM's ``srun --kill-on-bad-exit``, the Kubernetes Job
controller) stopped because of it.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Signals the targets stop a gang's other ranks with: 128 + SIGTERM / SIGKILL.
STOP_EXIT_CODES = (143, 137)
_REASON = re.compile(r"(Error|Exception|error:|timed out|refused|not known|unreachable|cannot)", re.IGNORECASE)
_TAIL_LINES = 60
_MAX_LINE = 240


@dataclass(frozen=True)
class RankEnd:
    """How one rank ended. ``finished``: seconds since the epoch (0.0 when unknown); ``stopped``: the
    target stopped it (another rank failed, or the run was cancelled); ``log``: the rank's log text."""

    rank: int
    node: str
    exit_code: int | None
    error: str = ""
    stopped: bool = False
    finished: float = 0.0
    log: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.exit_code not in (0, None)


def reason_line(log: str) -> str:
    """The last line of a log's tail that reads like an error (torch's ``TimeoutError: ...``,
    ``Connection refused``, ...); '' when none does."""
    for line in reversed(log.splitlines()[-_TAIL_LINES:]):
        text = line.strip()
        if text and _REASON.search(text) and not text.startswith("[pytest-madengine]"):
            return text if len(text) <= _MAX_LINE else text[:_MAX_LINE] + "..."
    return ""


def first_failure(ends: Sequence[RankEnd]) -> RankEnd | None:
    """The rank that failed on its own first: not stopped, and not ended by the stop signals when a
    rank ended otherwise; the earliest to finish, then the lowest rank."""
    failed = [end for end in ends if end.failed and not end.stopped]
    own = [end for end in failed if end.exit_code not in STOP_EXIT_CODES] or failed
    return min(own, key=lambda end: (end.finished or float("inf"), end.rank), default=None)


def gang_reason(ends: Sequence[RankEnd]) -> str:
    """One paragraph: which rank failed first and why (its error, exit code and its log's error line),
    and which ranks were stopped with it; '' when no rank failed on its own."""
    first = first_failure(ends)
    if first is None:
        return ""
    why = first.error or f"exit code {first.exit_code}"
    line = reason_line(first.log)
    if line and line not in why:
        why = f"{why}: {line}"
    text = f"rank {first.rank} ({first.node or '?'}) failed first: {why}"
    others = [end for end in ends if end is not first and (end.stopped or end.exit_code in STOP_EXIT_CODES)]
    if others:
        text += f"; rank(s) {', '.join(str(end.rank) for end in others)} were stopped with it"
    return text
