"""The history's records: sessions, stored rows, what makes results comparable, baselines.

Plain frozen dataclasses (re-exported by :mod:`.store`, where the queries return them).
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..results.references import Context


def new_session_id(now: float | None = None) -> str:
    """A sortable, unique session id: ``20261130-142501-3f9a1c`` (UTC start time + 24 random bits)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SessionInfo:
    """One pytest session as the history keeps it (times in unix seconds)."""

    id: str
    started: float
    host: str = ""
    target: str = ""  # local / slurm / k8s
    git_commit: str = ""  # of the MAD package
    gpu_vendor: str = ""  # AMD / NVIDIA / ''
    gpu_architecture: str = ""  # e.g. gfx942
    gpu_count: int = 0  # GPUs of the session's pool
    nodes: int = 1
    pytest_args: tuple[str, ...] = ()
    ended: float | None = None
    pipeline: str = ""  # the CI pipeline/job that ran it (URL or id; see ci_pipeline)
    source: str = ""  # the perf.csv a `history import` read; '' for a live session


@dataclass(frozen=True)
class SessionSummary:
    """A stored session with its result counts (rows, FAILURE rows, distinct models)."""

    info: SessionInfo
    rows: int
    failures: int
    models: int


@dataclass(frozen=True)
class HistoryRow:
    """One stored result row: the perf.csv fields plus what the history adds."""

    session_id: str
    started: float  # the session's start (unix seconds)
    fields: dict[str, str]  # the 29 perf.csv fields
    value: float | None  # performance as a number
    phase: str = ""
    reason: str = ""
    repeat: int = 0
    row_index: int = 0
    image_digest: str = ""

    @property
    def model(self) -> str:
        return self.fields["model"]


@dataclass(frozen=True)
class Match:
    """What makes two results comparable: same model (row name), GPU architecture, GPU and node count."""

    model: str
    gpu_architecture: str = ""
    n_gpus: str = ""  # as in perf.csv ('8')
    nnodes: str = "1"

    @classmethod
    def of_row(cls, row: Mapping[str, str]) -> Match:
        return cls(str(row.get("model", "")), str(row.get("gpu_architecture", "")),
                   str(row.get("n_gpus", "")), str(row.get("nnodes", "") or "1"))

    def context(self) -> Context:
        """The GPU facts as a :class:`Context` (for reference look-ups and messages)."""
        return Context(self.gpu_architecture, _int(self.n_gpus), _int(self.nnodes) or 1)


@dataclass(frozen=True)
class SessionValue:
    """A session's value for one match: the median of its successful rows (repeats)."""

    session_id: str
    started: float
    value: float
    metric: str
    samples: int


@dataclass(frozen=True)
class Baseline:
    """The history value a result is compared with, and where it came from."""

    value: float
    metric: str
    spec: str  # the --mad-compare text
    sessions: tuple[str, ...]  # ids of the sessions it was computed from (newest first)
    description: str = ""  # e.g. "last, session 20261130-142501-3f9a1c"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0
