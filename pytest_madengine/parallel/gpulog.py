"""Reading the allocation record ``gpu-allocations.jsonl``: intervals, checks, a live feed.

The allocator (gpus.py) appends one JSON line per event: ``acquire`` (ids granted, ``waited``),
``release`` (``held_for``), ``reclaim`` (a dead process's hold taken back), ``abandon`` (a waiter
left the queue: timeout, Ctrl-C) and ``drop-ticket`` (a dead waiter's ticket removed); each with
``t`` (wall clock), ``ticket``, ``owner`` (test id), ``ids``, ``n``, ``pid`` and ``worker``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .gpus import format_gpu_list


@dataclass(frozen=True)
class Interval:
    """One allocation as recorded: GPU ids held from ``start`` to ``end`` (wall clock)."""

    ticket: int
    owner: str
    ids: tuple[int, ...]
    start: float
    end: float


def read_intervals(events_path: Path) -> list[Interval]:
    """Allocation intervals from ``gpu-allocations.jsonl``; a reclaimed hold ends at reclaim
    time (an upper bound), one never released ends at infinity."""
    starts: dict[int, dict[str, Any]] = {}
    ends: dict[int, float] = {}
    for line in Path(events_path).read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "acquire":
            starts[event["ticket"]] = event
        elif event["event"] in ("release", "reclaim"):
            ends[event["ticket"]] = event["t"]
    return [Interval(ticket, e["owner"], tuple(e["ids"]), e["t"], ends.get(ticket, float("inf")))
            for ticket, e in sorted(starts.items())]


def overlap_conflicts(intervals: list[Interval], pool_size: int) -> list[str]:
    """Pairs of overlapping intervals that share a GPU, or overlap a whole-node allocation."""
    problems = []
    for i, a in enumerate(intervals):
        for b in intervals[i + 1:]:
            if a.start >= b.end or b.start >= a.end:
                continue
            shared = set(a.ids) & set(b.ids)
            if shared or pool_size in (len(a.ids), len(b.ids)):
                problems.append(f"{a.owner} {a.ids} and {b.owner} {b.ids} overlap "
                                f"(shared {sorted(shared)})")
    return problems


def peak_concurrency(intervals: list[Interval]) -> int:
    """The most allocations held at the same moment."""
    points = sorted([(i.start, 1) for i in intervals] + [(i.end, -1) for i in intervals])
    level = peak = 0
    for _, step in points:
        level += step
        peak = max(peak, level)
    return peak


class AllocationFeed:
    """Lines for allocation events appended to ``gpu-allocations.jsonl`` since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as events:
                events.seek(self.offset)
                data = events.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [describe_event(json.loads(line)) for line in complete.splitlines() if line.strip()]


def describe_event(event: dict[str, Any]) -> str:
    ids = format_gpu_list(event.get("ids") or []) or "-"
    where = f"[{event.get('worker') or '?'}]"
    name = event.get("owner", "?").rsplit("::", 1)[-1]
    if event["event"] == "acquire":
        return f"{where} GPUs {ids} -> {name} (waited {event.get('waited', 0):.1f}s)"
    if event["event"] == "release":
        return f"{where} GPUs {ids} <- {name} (held {event.get('held_for', 0):.1f}s)"
    if event["event"] == "reclaim":
        return f"{where} GPUs {ids} reclaimed from dead worker (pid {event.get('pid')}, {name})"
    return f"{where} {event['event']} ticket {event.get('ticket')} ({name})"
