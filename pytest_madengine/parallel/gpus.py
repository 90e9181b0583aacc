"""The GPU pool of one node and the cross-process allocator that hands out disjoint GPU sets.

Correctness (no two running models share a GPU) lives here, in the worker processes; the xdist
scheduler (xdist.py) only orders work so the GPUs stay busy.

Allocation policy — largest first, backfill under a reservation, a gathered first wave:
    waiting requests are served in priority order: whole node (-1) first, then more GPUs first,
    ties by ticket (arrival). Walking that order, every request that fits into the GPUs still
    free starts. A request that does not fit lets smaller ones behind it use GPUs that would
    otherwise idle (backfill), but only until it has waited ``RESERVE_AFTER_S``: from then on it
    is a reservation and nothing behind it starts, so it waits at most for the holds running at
    that moment (no starvation; without run-time estimates this is the bound we can give).
    The session's first grant waits until the expected first wave has queued (one request per
    xdist worker, at most one per item that needs GPUs) or ``START_GATHER_S`` passed: workers
    start up in random order, and serving whichever small card's worker came first would make
    the 8-GPU card of that wave wait a whole model's run (FIFO measured 1.27x the ideal
    makespan on mixed sizes, largest first after gathering 1.0x plus start-up).

State: ``session_dir/gpus.json`` (held sets and the ticket queue), read and replaced atomically
under one ``fcntl.flock`` on ``session_dir/gpus.lock``. Holders and waiters are identified by
(host, pid, process start time); entries of dead processes are reclaimed by whoever takes the
lock next, so a killed xdist worker never leaves a GPU held. Every grant, release and reclaim is
appended to ``session_dir/gpu-allocations.jsonl``.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MadError, MadSkip
from ..fileio import atomic_write_json
from ..host import parse_gpu_list

LOCK_NAME = "gpus.lock"
STATE_NAME = "gpus.json"
EVENTS_NAME = "gpu-allocations.jsonl"
POLL_MIN_S, POLL_MAX_S = 0.01, 0.05
HEARTBEAT_S = 1.0  # how often a waiter refreshes its ticket
STALE_TICKET_S = 30.0  # a live process whose waiter stopped polling this long loses its place
RESERVE_AFTER_S = 5.0  # a request blocked this long stops smaller ones from overtaking it
START_GATHER_S = 2.0  # the longest the first grant waits for the first wave to queue


def format_gpu_list(ids: tuple[int, ...] | list[int]) -> str:
    """``(0, 1, 2, 3, 6)`` → ``"0-3,6"``; the inverse of :func:`parse_gpu_list`."""
    runs: list[list[int]] = []
    for gpu in sorted(ids):
        if runs and gpu == runs[-1][1] + 1:
            runs[-1][1] = gpu
        else:
            runs.append([gpu, gpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@dataclass(frozen=True)
class GpuPool:
    ids: tuple[int, ...]
    source: str  # "declared" | "context" | "visible-env" | "detected" | "none"

    def __len__(self) -> int:
        return len(self.ids)

    def describe(self) -> str:
        return f"{format_gpu_list(self.ids) or 'no GPUs'} ({self.source})"

    @classmethod
    def resolve(cls, *, gpus_option: str | None, context_gpus: str | None,
                env: Mapping[str, str], detected_count: int) -> GpuPool:
        """Pick the pool: --mad-gpus, else context docker_gpus, else *_VISIBLE_DEVICES, else all
        detected GPUs. A declared list on a host where nothing is detected is taken as is."""
        detected = tuple(range(max(detected_count, 0)))
        option = (gpus_option or "").strip()
        if option.lower() == "none":
            return cls((), "none")
        if option.lower() == "all":
            return cls(detected, "detected")
        if option:
            return cls(_checked(parse_gpu_list(option), detected, "--mad-gpus"), "declared")
        context = str(context_gpus or "").strip()
        if context.lower() == "all":
            return cls(detected, "detected")
        if context:
            where = "context docker_gpus"
            return cls(_checked(parse_gpu_list(context, where), detected, where), "context")
        from ..host import VISIBILITY_VARS, visible_gpu_ids

        visible = visible_gpu_ids(env)
        if visible is not None:
            return cls(_checked(visible, detected, "/".join(VISIBILITY_VARS)), "visible-env")
        return cls(detected, "detected")


def _checked(ids: tuple[int, ...], detected: tuple[int, ...], where: str) -> tuple[int, ...]:
    missing = sorted(set(ids) - set(detected))
    if detected and missing:
        raise MadError(f"GPU(s) {format_gpu_list(missing)} do not exist on this host "
                       f"(detected {format_gpu_list(detected)})", where=where,
                       fix=f"choose ids within {format_gpu_list(detected)}")
    return ids


@dataclass
class Allocation:
    """GPUs held by one owner; release it (or leave a ``with`` block) to give them back."""

    ids: tuple[int, ...]
    owner: str
    ticket: int
    acquired_at: float
    _allocator: GpuAllocator | None = field(default=None, repr=False, compare=False)

    def release(self) -> None:
        if self._allocator is not None:
            self._allocator.release(self)

    def __enter__(self) -> Allocation:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class GpuAllocator:
    """Blocking allocation of GPU sets shared by every process of one session: largest first,
    with bounded backfill (see the module docstring)."""

    def __init__(self, session_dir: Path, pool: GpuPool, *,
                 on_reclaim: Callable[[dict[str, Any]], None] | None = None,
                 first_wave: int = 1) -> None:
        """``on_reclaim(hold)`` runs (under the lock) before a dead process's GPUs are given
        out again: stop what it left running there (its containers), or the next model would
        share a GPU with an orphan. ``first_wave``: how many requests the session's first grant
        waits for (at most ``START_GATHER_S``); 1 grants the first request at once."""
        self.session_dir = Path(session_dir)
        self.pool = pool
        self.on_reclaim = on_reclaim
        self.first_wave = max(1, first_wave)
        self.session_dir.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.session_dir / LOCK_NAME
        self.state_path = self.session_dir / STATE_NAME
        self.events_path = self.session_dir / EVENTS_NAME
        self._me = _process_identity()
        self._mine: dict[int, Allocation] = {}

    # -- public API --------------------------------------------------------------------------
    def acquire(self, n_gpus: int, *, owner: str, timeout: float | None = None) -> Allocation:
        need = len(self.pool) if n_gpus < 0 else n_gpus
        if not self.pool.ids or need == 0:
            return Allocation((), owner, -1, time.time(), self)
        if need > len(self.pool):
            raise MadSkip(f"needs {need} GPUs, the pool has {len(self.pool)} "
                          f"({format_gpu_list(self.pool.ids)})")
        started = time.monotonic()
        ticket = -1
        try:
            with _interrupts_deferred():
                ticket = self._enqueue(need, owner)
            allocation = self._wait(ticket, need, owner, started, timeout)
            self._mine[ticket] = allocation
        except BaseException:
            if ticket >= 0:
                self._abandon(ticket)  # timeout, Ctrl-C, anything: leave no ticket and no hold
            raise
        return allocation

    def release(self, allocation: Allocation) -> None:
        self._mine.pop(allocation.ticket, None)
        if allocation.ticket < 0:
            return
        with self._locked() as state:
            held = [h for h in state["holds"] if h["ticket"] == allocation.ticket]
            state["holds"] = [h for h in state["holds"] if h["ticket"] != allocation.ticket]
            if held:  # already gone when reclaimed or released twice
                self._log("release", held[0], held_for=time.time() - held[0]["since"])

    def release_all(self) -> None:
        """Give back everything this allocator still holds (Ctrl-C, session end)."""
        for allocation in list(self._mine.values()):
            self.release(allocation)

    def reap(self) -> int:
        """Reclaim holds and tickets of dead processes now; returns how many were reclaimed."""
        with self._locked() as state:
            return self._reap(state)

    def held(self) -> dict[int, str]:
        """GPU id → owner, as the state file says now (stale entries reclaimed first)."""
        with self._locked() as state:
            self._reap(state)
            return {gpu: h["owner"] for h in state["holds"] for gpu in h["ids"]}

    # -- queue --------------------------------------------------------------------------------
    def _enqueue(self, need: int, owner: str) -> int:
        with self._locked() as state:
            self._reap(state)
            ticket = state["next_ticket"]
            state["next_ticket"] = ticket + 1
            state["queue"].append(self._entry(ticket, need, owner))
            return int(ticket)

    def _abandon(self, ticket: int) -> None:
        self._mine.pop(ticket, None)
        with self._locked() as state:
            for key, event in (("queue", "abandon"), ("holds", "release")):
                for entry in [e for e in state[key] if e["ticket"] == ticket]:
                    state[key].remove(entry)
                    self._log(event, entry)

    def _wait(self, ticket: int, need: int, owner: str, started: float,
              timeout: float | None) -> Allocation:
        delay = POLL_MIN_S
        while True:
            with self._locked() as state:
                granted = self._try_grant(state, ticket, need, owner, started)
            if granted is not None:
                return granted
            waited = time.monotonic() - started
            if timeout is not None and waited >= timeout:
                raise MadError(f"waited {waited:.0f} s for {need} GPU(s) of "
                               f"{format_gpu_list(self.pool.ids)} without getting them",
                               where=owner, fix="raise the timeout or run fewer models at once")
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)

    def _try_grant(self, state: dict[str, Any], ticket: int, need: int, owner: str,
                   started: float) -> Allocation | None:
        self._reap(state)
        entry = next((e for e in state["queue"] if e["ticket"] == ticket), None)
        if entry is None:  # dropped as stale while this process was paused: same place again
            entry = self._entry(ticket, need, owner)
            state["queue"].append(entry)
            state["queue"].sort(key=lambda e: e["ticket"])
        free = [gpu for gpu in self.pool.ids if gpu not in _held_ids(state)]
        if not self._gathered(state) or ticket not in _grantable(state["queue"], len(free), time.time()):
            if time.time() - entry["seen"] >= HEARTBEAT_S:
                entry["seen"] = time.time()
            return None
        ids = _pick(free, need)
        state["queue"].remove(entry)
        hold = {**entry, "ids": list(ids), "since": time.time()}
        state["holds"].append(hold)
        state["started"] = True
        self._log("acquire", hold, waited=time.monotonic() - started)
        return Allocation(ids, owner, ticket, hold["since"], self)

    def _gathered(self, state: dict[str, Any]) -> bool:
        """True once the session granted anything, the first wave queued, or gathering timed out."""
        if state.get("started") or len(state["queue"]) >= self.first_wave:
            return True
        first = min((e["queued"] for e in state["queue"]), default=time.time())
        return time.time() - first >= START_GATHER_S

    def _entry(self, ticket: int, need: int, owner: str) -> dict[str, Any]:
        now = time.time()
        return {"ticket": ticket, "n": need, "owner": owner, "seen": now, "queued": now,
                "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"), **self._me}

    # -- stale entries ------------------------------------------------------------------------
    def _reap(self, state: dict[str, Any]) -> int:
        now = time.time()
        dead_holds = [h for h in state["holds"] if not _alive(h)]
        dead_tickets = [e for e in state["queue"]
                        if not _alive(e) or now - e["seen"] > STALE_TICKET_S]
        for hold in dead_holds:
            self._log("reclaim", hold, held_for=now - hold["since"], **self._cleanup(hold))
        for entry in dead_tickets:
            self._log("drop-ticket", entry)
        state["holds"] = [h for h in state["holds"] if h not in dead_holds]
        state["queue"] = [e for e in state["queue"] if e not in dead_tickets]
        return len(dead_holds) + len(dead_tickets)

    def _cleanup(self, hold: dict[str, Any]) -> dict[str, Any]:
        if self.on_reclaim is None:
            return {}
        try:
            self.on_reclaim(hold)
        except Exception as exc:  # noqa: BLE001 - a failed cleanup must not wedge the pool
            return {"cleanup_error": f"{type(exc).__name__}: {exc}"}
        return {"cleaned": True}

    # -- files --------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state under the session lock; written back (atomically) unless unchanged. A
        Ctrl-C arriving meanwhile is raised after the write, so no transition is half done."""
        with _interrupts_deferred(), open(self.lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state = self._load()
            snapshot = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != snapshot:
                self._store(state)

    def _load(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            state = {}
        state.setdefault("holds", [])
        state.setdefault("queue", [])
        state.setdefault("next_ticket", 0)
        state["pool"] = list(self.pool.ids)
        return state

    def _store(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_path, state, indent=None)

    def _log(self, event: str, entry: dict[str, Any], **extra: Any) -> None:
        record = {"event": event, "t": time.time(), "ticket": entry["ticket"],
                  "owner": entry["owner"], "ids": entry.get("ids", []), "n": entry["n"],
                  "pid": entry["pid"], "worker": entry.get("worker", ""),
                  **{key: round(value, 4) if isinstance(value, float) else value
                     for key, value in extra.items()}}
        with open(self.events_path, "a", encoding="utf-8") as events:
            events.write(json.dumps(record) + "\n")


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back SIGINT (main thread only: Python runs handlers there) until the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, received[0])
        elif received and previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)


def _held_ids(state: dict[str, Any]) -> set[int]:
    return {gpu for hold in state["holds"] for gpu in hold["ids"]}


def _priority(entry: dict[str, Any]) -> tuple[int, int]:
    return (-int(entry["n"]), int(entry["ticket"]))


def _grantable(queue: list[dict[str, Any]], free: int, now: float) -> set[int]:
    """Tickets that may start now: largest first, smaller ones backfilling past a request that
    does not fit until that request has waited ``RESERVE_AFTER_S`` (then it reserves)."""
    granted: set[int] = set()
    for entry in sorted(queue, key=_priority):
        if entry["n"] <= free:
            free -= entry["n"]
            granted.add(entry["ticket"])
        elif now - entry.get("queued", entry["seen"]) >= RESERVE_AFTER_S:
            break
    return granted


def _pick(free: list[int], need: int) -> tuple[int, ...]:
    """The first run of ``need`` consecutive ids if there is one (neighbouring GPUs tend to
    share a switch/hive), else the lowest free ids."""
    for start in range(len(free) - need + 1):
        window = free[start:start + need]
        if window[-1] - window[0] == need - 1:
            return tuple(window)
    return tuple(free[:need])


def _process_identity(pid: int | None = None) -> dict[str, Any]:
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "host": socket.gethostname(), "pstart": _start_time(pid)}


def _start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (guards against a recycled pid); '' if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(entry: dict[str, Any]) -> bool:
    if entry.get("host") != socket.gethostname():
        return True  # another machine's process: not ours to judge
    pid = int(entry["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = entry.get("pstart") or ""
    return not started or _start_time(pid) in ("", started)

