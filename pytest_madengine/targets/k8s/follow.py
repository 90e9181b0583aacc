"""Following one Job: its pods and the Job itself through the watch API, pod logs streamed live.

Two watch threads (pods by ``batch.kubernetes.io/job-name``, the Job by name) feed one queue; the
caller's loop reads it and decides (``JobFollower.follow``): done when the Job is ``Complete`` or
``Failed``; hopeless at once on a pod the kubelet cannot start (``ErrImagePull``,
``ImagePullBackOff``, ``CreateContainerConfigError`` ...); a gang not fully scheduled within
``k8s.scheduling_timeout`` (or asking more GPUs than any node has) fails with the scheduler's
message; past the model's timeout (counted from the first running pod) it is timed out.
No GET polling: the loop's one-second wake-up only checks those deadlines.
"""
from __future__ import annotations

import codecs
import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import api_message, is_connection_error
from .objects import CONTAINER, JOB_NAME_LABEL
from .payload import ResultsFilter

HOPELESS_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                    "CreateContainerConfigError", "CreateContainerError", "RunContainerError")
WATCH_SECONDS = 30  # server-side timeout of one watch request; it is renewed from its resourceVersion
UNREACHABLE_GRACE = 60  # seconds an API restart may take before the run is reported as lost


@dataclass
class PodState:
    """What the follower knows of one pod (from its last watch event)."""

    name: str
    index: int
    node: str = ""
    phase: str = "Pending"
    scheduled: bool = False
    unschedulable: str = ""  # the scheduler's message while it cannot place the pod
    waiting: tuple[str, str] = ("", "")  # container waiting (reason, message)
    started: bool = False  # the container has run (log available)
    exit_code: int | None = None
    terminated_reason: str = ""  # OOMKilled, Error, Completed
    finished_at: float = 0.0  # when the container terminated (seconds since the epoch; 0.0 unknown)
    deleted: bool = False  # deletion asked (the Job controller stops a failed gang's running pods so)
    pod_reason: str = ""  # Evicted, DeadlineExceeded ...
    pod_message: str = ""


def pod_state(pod: Any) -> PodState:
    meta, status, spec = pod.metadata, pod.status, pod.spec
    annotations = meta.annotations or {}
    index = int(annotations.get("batch.kubernetes.io/job-completion-index", "0") or 0)
    state = PodState(name=meta.name, index=index, node=spec.node_name or "", phase=status.phase or "Pending",
                     pod_reason=status.reason or "", pod_message=status.message or "",
                     deleted=meta.deletion_timestamp is not None)
    for condition in status.conditions or []:
        if condition.type == "PodScheduled":
            state.scheduled = condition.status == "True"
            if condition.status == "False" and condition.reason == "Unschedulable":
                state.unschedulable = condition.message or "Unschedulable"
    for container in status.container_statuses or []:
        if container.name != CONTAINER:
            continue
        current = container.state
        if current.waiting is not None:
            state.waiting = (current.waiting.reason or "", current.waiting.message or "")
        if current.running is not None:
            state.started = True
        if current.terminated is not None:
            state.started = True
            state.exit_code = current.terminated.exit_code
            state.terminated_reason = current.terminated.reason or ""
            finished = current.terminated.finished_at
            state.finished_at = finished.timestamp() if finished is not None else 0.0
    return state


@dataclass
class JobStatus:
    finished: bool = False
    failed_reason: str = ""  # BackoffLimitExceeded, DeadlineExceeded, ...
    failed_message: str = ""


def job_status(job: Any) -> JobStatus:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return JobStatus(finished=True)
        if condition.type == "Failed":
            return JobStatus(True, condition.reason or "Failed", condition.message or "")
    return JobStatus()


@dataclass
class Verdict:
    """How following ended. ``error``: an infrastructure reason ('' when only exit codes tell)."""

    state: str  # Complete, Failed, TimedOut, Unschedulable, NotStarted, Lost, Interrupted
    error: str = ""
    timed_out: bool = False
    running_since: float | None = None


class PodLog(threading.Thread):
    """Streams one pod's log (``follow=True``) into a file and the live callback, results block cut out."""

    def __init__(self, core: Any, namespace: str, pod: PodState, path: Path, mark: str,
                 live: Callable[[str], None] | None, prefix: str) -> None:
        super().__init__(daemon=True, name=f"log-{pod.name}")
        self.core, self.namespace, self.pod, self.path = core, namespace, pod, path
        self.filter = ResultsFilter(mark)
        self.live, self.prefix = live, prefix
        self._response: Any = None

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        with self.path.open("w", encoding="utf-8") as log:
            try:
                self._response = self.core.read_namespaced_pod_log(
                    self.pod.name, self.namespace, container=CONTAINER, follow=True, _preload_content=False)
                for chunk in self._response.stream(4096):
                    *lines, pending = (pending + decoder.decode(chunk)).split("\n")
                    for line in lines:
                        self._line(log, line)
            except Exception as exc:  # noqa: BLE001 -- pod deleted or API gone: keep what we have
                if not getattr(self, "stopped", False):
                    log.write(f"[pytest-madengine: the log stream ended: {_short(exc)}]\n")
            if pending:
                self._line(log, pending)

    def _line(self, log: Any, line: str) -> None:
        if not self.filter.keep(line):
            return
        log.write(line + "\n")
        log.flush()
        if self.live is not None:
            self.live(self.prefix + line)

    def stop(self) -> None:
        """Unblock the reader: shut the socket down (closing the response from here would wait for
        the reading thread's buffer lock, forever on a pod that prints nothing)."""
        self.stopped = True
        connection = getattr(self._response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _short(exc: BaseException) -> str:
    return api_message(exc)[2][:200] if getattr(exc, "status", None) else type(exc).__name__


@dataclass
class Watches:
    """The two watch threads of one Job and the queue they feed."""

    core: Any
    batch: Any
    namespace: str
    job: str
    events: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        for kind, lister, selector in (
                ("pod", self.core.list_namespaced_pod, {"label_selector": f"{JOB_NAME_LABEL}={self.job}"}),
                ("job", self.batch.list_namespaced_job, {"field_selector": f"metadata.name={self.job}"})):
            threading.Thread(target=self._watch, args=(kind, lister, selector), daemon=True,
                             name=f"watch-{kind}-{self.job}").start()

    def stop(self) -> None:
        self.stopping.set()

    def _watch(self, kind: str, lister: Callable[..., Any], selector: dict[str, str]) -> None:
        from kubernetes import watch

        version = ""
        failing_since: float | None = None
        while not self.stopping.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(lister, self.namespace, resource_version=version or None,
                                           timeout_seconds=WATCH_SECONDS, **selector):
                    if self.stopping.is_set():
                        stream.stop()
                        return
                    if event["type"] == "ERROR":  # e.g. 410 Gone as an event: list again
                        version = ""
                        break
                    version = event["object"].metadata.resource_version or version
                    self.events.put((kind, event["object"]))
                    failing_since = None
            except Exception as exc:  # noqa: BLE001 -- 410 Gone: list again; unreachable: tell the loop
                if getattr(exc, "status", None) == 410:
                    version = ""
                    continue
                failing_since = failing_since or time.monotonic()
                if not is_connection_error(exc) or time.monotonic() - failing_since > UNREACHABLE_GRACE:
                    self.events.put(("error", exc))
                    return
                time.sleep(1)


class JobFollower:
    """Follows one Job to its end (see the module docstring); log pumps started as pods start."""

    def __init__(self, core: Any, batch: Any, *, namespace: str, job: str, nnodes: int, timeout: int | None,
                 scheduling_timeout: int, log_path: Callable[[PodState], Path], mark: str,
                 live: Callable[[str], None] | None, gpu_check: Callable[[str], str] | None = None) -> None:
        self.core, self.namespace, self.job, self.nnodes = core, namespace, job, nnodes
        self.timeout, self.scheduling_timeout = timeout, scheduling_timeout
        self.log_path, self.mark, self.live, self.gpu_check = log_path, mark, live, gpu_check
        self.watches = Watches(core, batch, namespace, job)
        self.pods: dict[str, PodState] = {}
        self.logs: dict[str, PodLog] = {}
        self.job_state = JobStatus()
        self._checked_capacity = False

    def follow(self) -> Verdict:
        self.watches.start()
        try:
            return self._loop()
        finally:
            self.watches.stop()

    def _loop(self) -> Verdict:
        submitted = time.monotonic()
        running_since: float | None = None
        while True:
            try:
                kind, obj = self.watches.events.get(timeout=1.0)
            except queue.Empty:
                kind, obj = "", None
            if kind == "error":
                return Verdict("Lost", f"following Job {self.job} failed: {_describe(obj)}",
                               running_since=running_since)
            self._apply(kind, obj)
            if running_since is None and any(p.started for p in self.pods.values()):
                running_since = time.monotonic()
            verdict = self._decide(submitted, running_since)
            if verdict is not None:
                verdict.running_since = running_since
                if verdict.state in ("Complete", "Failed"):
                    self._settle()
                return verdict

    def _settle(self, wait: float = 10) -> None:
        """The Job's end can arrive before its pods' last events: read those (exit codes) too."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            indices = {p.index for p in self.pods.values()
                       if p.exit_code is not None or p.phase in ("Succeeded", "Failed")}
            if len(indices) >= self.nnodes:
                return
            try:
                kind, obj = self.watches.events.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "pod":
                self._apply(kind, obj)

    def _apply(self, kind: str, obj: Any) -> None:
        if kind == "job":
            self.job_state = job_status(obj)
        elif kind == "pod":
            state = pod_state(obj)
            self.pods[state.name] = state
            if state.started and state.name not in self.logs:
                prefix = f"[rank {state.index}] " if self.nnodes > 1 else ""
                pump = PodLog(self.core, self.namespace, state, self.log_path(state), self.mark, self.live, prefix)
                self.logs[state.name] = pump
                pump.start()

    def _decide(self, submitted: float, running_since: float | None) -> Verdict | None:
        if self.job_state.finished:
            return self._finished()
        for pod in self.pods.values():
            reason, message = pod.waiting
            if reason in HOPELESS_WAITING:
                return Verdict("NotStarted", f"pod {pod.name} cannot start: {reason}: {message or 'no message'}")
        now = time.monotonic()
        unscheduled = [p for p in self.pods.values() if not p.scheduled and p.phase == "Pending"]
        if unscheduled and unscheduled[0].unschedulable:
            message = unscheduled[0].unschedulable
            hopeless = self._no_node_fits(message)
            if hopeless or now - submitted > self.scheduling_timeout:
                why = hopeless or ("not every pod was scheduled within "
                                   f"k8s.scheduling_timeout={self.scheduling_timeout} s")
                return Verdict("Unschedulable", f"Job {self.job} is Unschedulable: {message} ({why})")
        if self.timeout and running_since is not None and now - running_since > self.timeout:
            return Verdict("TimedOut", timed_out=True)
        return None

    def _no_node_fits(self, message: str) -> str:
        """Asked once, when the scheduler says Insufficient <resource>: whether no node has enough."""
        if self._checked_capacity or self.gpu_check is None or "Insufficient" not in message:
            return ""
        self._checked_capacity = True
        return self.gpu_check(message)

    def _finished(self) -> Verdict:
        state = self.job_state
        if not state.failed_reason:
            return Verdict("Complete")
        problems = [f"pod {p.name}: {p.terminated_reason}" for p in self.pods.values()
                    if p.terminated_reason == "OOMKilled"]
        problems += [f"pod {p.name} {p.pod_reason}: {p.pod_message}" for p in self.pods.values()
                     if p.pod_reason in ("Evicted", "DeadlineExceeded", "Preempting", "Shutdown", "NodeLost")]
        if state.failed_reason == "DeadlineExceeded":
            return Verdict("Failed", f"Job {self.job} failed: DeadlineExceeded: {state.failed_message}",
                           timed_out=True)
        if problems or state.failed_reason != "BackoffLimitExceeded":
            detail = "; ".join(problems) or state.failed_message
            return Verdict("Failed", f"Job {self.job} failed: {state.failed_reason}: {detail}")
        return Verdict("Failed")  # the model's own non-zero exit: the exit code tells

    def finish_logs(self, wait: float = 30) -> None:
        deadline = time.monotonic() + wait
        for pump in self.logs.values():
            pump.join(timeout=max(0.1, deadline - time.monotonic()))
            if pump.is_alive():
                pump.stop()

    def stop_logs(self) -> None:
        for pump in self.logs.values():
            pump.stop()


def _describe(exc: Any) -> str:
    if is_connection_error(exc):
        return f"the Kubernetes API became unreachable ({type(exc).__name__}: {str(exc)[:200]})"
    status, reason, message = api_message(exc)
    return f"{reason or type(exc).__name__} ({status}): {message}"
