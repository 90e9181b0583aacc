"""Following one Job: its pods and the Job itself through the watch API, pod logs streamed live.

Two watch threads (pods by ``batch.kubernetes.io/job-name``, the Job by name) feed one queue; the
caller's loop reads it and decides (``JobFollower.follow``): done when the Job is ``Complete`` or
``Failed``; hopeless at once on a pod the kubelet cannot start (``ErrImagePull``,
``ImagePullBackOff``, ``CreateContainerConfigError`` ...); a gang not fully scheduled within
``k8s.scheduling_timeout`` (or asking more than any node could ever hold: ``capacity``) fails with
the scheduler's message; the Job deleted, or a pod deleted or evicted, by someone outside the
session fails within seconds with that reason (the namespace named when it is being deleted); past
the model's timeout (counted from the first running pod) it is timed out. Pod logs: ``podlog``
(read again where a stream broke). No GET polling: the loop's one-second wake-up only checks those
deadlines; one pod list when a Job's end comes without its pods' last events.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api import api_message, is_connection_error, is_not_found
from .objects import CONTAINER, JOB_NAME_LABEL
from .podlog import PodLog

HOPELESS_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                    "CreateContainerConfigError", "CreateContainerError", "RunContainerError")
WATCH_SECONDS = 30  # server-side timeout of one watch request; it is renewed from its resourceVersion
UNREACHABLE_GRACE = 60  # seconds an API restart may take before the run is reported as lost
POD_GONE_GRACE = 5.0  # seconds the Job controller gets to end a Job whose pod was deleted under it


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
    deleting: str = ""  # why the pod is being deleted ('deleted' when no DisruptionTarget tells)

    @property
    def ended(self) -> bool:
        return self.exit_code is not None or self.phase in ("Succeeded", "Failed")


def pod_state(pod: Any) -> PodState:
    meta, status, spec = pod.metadata, pod.status, pod.spec
    annotations = meta.annotations or {}
    index = int(annotations.get("batch.kubernetes.io/job-completion-index", "0") or 0)
    state = PodState(name=meta.name, index=index, node=spec.node_name or "", phase=status.phase or "Pending",
                     pod_reason=status.reason or "", pod_message=status.message or "",
                     deleted=meta.deletion_timestamp is not None)
    if meta.deletion_timestamp is not None:
        state.deleting = "deleted"
    for condition in status.conditions or []:
        if condition.type == "DisruptionTarget" and condition.status == "True" and state.deleting:
            state.deleting = f"{condition.reason}: {condition.message}" if condition.message else condition.reason
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
    deleted: bool = False  # deleted (or being deleted) by someone else while it ran
    failing: bool = False  # FailureTarget: the Job controller is ending it (and deletes its pods)


def job_status(job: Any) -> JobStatus:
    if job.metadata is not None and job.metadata.deletion_timestamp is not None:
        return JobStatus(deleted=True)
    failing = False
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status != "True":
            continue
        failing = failing or condition.type == "FailureTarget"
        if condition.type == "Complete":
            return JobStatus(finished=True)
        if condition.type == "Failed":
            return JobStatus(True, condition.reason or "Failed", condition.message or "")
    return JobStatus(failing=failing)


@dataclass
class Verdict:
    """How following ended. ``error``: an infrastructure reason ('' when only exit codes tell)."""

    state: str  # Complete, Failed, TimedOut, Unschedulable, NotStarted, Lost, Interrupted
    error: str = ""
    timed_out: bool = False
    running_since: float | None = None


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
                    self.events.put((f"{kind}-deleted" if event["type"] == "DELETED" else kind, event["object"]))
                    failing_since = None
            except Exception as exc:  # noqa: BLE001 -- 410 Gone: list again; unreachable: tell the loop
                if getattr(exc, "status", None) == 410:
                    version = ""
                    continue
                failing_since = failing_since or time.monotonic()
                if not _transient(exc) or time.monotonic() - failing_since > UNREACHABLE_GRACE:
                    self.events.put(("error", exc))
                    return
                time.sleep(1)


class JobFollower:
    """Follows one Job to its end (see the module docstring); log pumps started as pods start."""

    def __init__(self, core: Any, batch: Any, *, namespace: str, job: str, nnodes: int, timeout: int | None,
                 scheduling_timeout: int, log_path: Callable[[PodState], Path], mark: str,
                 live: Callable[[str], None] | None, capacity_check: Callable[[], str] | None = None) -> None:
        self.core, self.namespace, self.job, self.nnodes = core, namespace, job, nnodes
        self.timeout, self.scheduling_timeout = timeout, scheduling_timeout
        self.log_path, self.mark, self.live, self.capacity_check = log_path, mark, live, capacity_check
        self.watches = Watches(core, batch, namespace, job)
        self.pods: dict[str, PodState] = {}
        self.logs: dict[str, PodLog] = {}
        self.job_state = JobStatus()
        self._checked_capacity = False
        self._gone: dict[str, float] = {}  # pod deleted under the run -> when it was noticed
        self.cancelled = False  # the session itself deletes the run's objects (Ctrl-C, session end)

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
                if verdict.state in ("Complete", "Failed") and self.job_state.finished:
                    self._settle()
                return verdict

    def _settle(self, wait: float = 2) -> None:
        """The Job's end can arrive before its pods' last events: wait briefly for those (exit codes),
        then read the pods once directly (a watch being renewed must not hold the result back)."""
        deadline = time.monotonic() + wait
        while not self._all_ended():
            if time.monotonic() > deadline:
                self._list_pods()
                return
            try:
                kind, obj = self.watches.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind.startswith("pod"):
                self._apply(kind, obj)

    def _all_ended(self) -> bool:
        return len({p.index for p in self.pods.values() if p.ended}) >= self.nnodes

    def _list_pods(self) -> None:
        try:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOB_NAME_LABEL}={self.job}").items
        except Exception:  # noqa: BLE001 -- the API is away: judge on what the watches told
            return
        for pod in pods:
            self._apply("pod", pod)

    def _apply(self, kind: str, obj: Any) -> None:
        if kind == "job":
            self.job_state = job_status(obj)
        elif kind == "job-deleted":
            self.job_state = JobStatus(deleted=True)
        elif kind in ("pod", "pod-deleted"):
            state = pod_state(obj)
            if kind == "pod-deleted" and not state.deleting:
                state.deleting = "deleted"
            known = self.pods.get(state.name)
            if known is not None and known.deleting and not state.deleting:
                state.deleting = known.deleting
            self.pods[state.name] = state
            if state.deleting and not state.ended:
                self._gone.setdefault(state.name, time.monotonic())
            if state.started and state.name not in self.logs:
                self._pump(state)
            elif state.ended and state.name in self.logs:
                self.logs[state.name].nudge()  # its reader need not wait to look once more

    def _pump(self, state: PodState) -> None:
        prefix = f"[rank {state.index}] " if self.nnodes > 1 else ""
        name = state.name
        pump = PodLog(self.core, self.namespace, name, self.log_path(state), self.mark, self.live, prefix,
                      ended=lambda: self.job_state.finished or self.pods[name].ended)
        self.logs[name] = pump
        pump.start()

    def _decide(self, submitted: float, running_since: float | None) -> Verdict | None:
        if self.job_state.finished:
            return self._finished()
        if self.job_state.deleted and self.cancelled:
            return Verdict("Failed", f"Job {self.job} was cancelled: the session is stopping")
        if self.job_state.deleted:
            return Verdict("Failed", f"Job {self.job} was deleted by someone outside this session while it ran"
                           + self._namespace_gone())
        now = time.monotonic()
        gone = [name for name, since in self._gone.items() if now - since > POD_GONE_GRACE]
        if gone and not self.cancelled and not self.job_state.failing and self._deleted_by_others():
            pod = self.pods[gone[0]]
            return Verdict("Failed", f"pod {pod.name} of Job {self.job} was deleted by someone outside this "
                                     f"session while it ran ({pod.deleting})" + self._namespace_gone())
        for pod in self.pods.values():
            reason, message = pod.waiting
            if reason in HOPELESS_WAITING:
                return Verdict("NotStarted", f"pod {pod.name} cannot start: {reason}: {message or 'no message'}")
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
        """Asked once, when the scheduler says Insufficient <resource> or a node selector matches no
        node: whether no node could ever hold the pod (``capacity.shortage``)."""
        if self._checked_capacity or self.capacity_check is None:
            return ""
        if "Insufficient" not in message and "node affinity/selector" not in message:
            return ""
        self._checked_capacity = True
        return self.capacity_check()

    def _deleted_by_others(self) -> bool:
        """Whether the deleted pods were deleted from outside: no other pod failed on its own (then the
        Job controller deletes the rest of a gang: the failing rank is the reason)."""
        return not any(p.exit_code not in (None, 0) for name, p in self.pods.items() if name not in self._gone)

    def _namespace_gone(self) -> str:
        """' (namespace X is being deleted)' when that is why, else ''."""
        try:
            namespace = self.core.read_namespace(self.namespace)
        except Exception as exc:  # noqa: BLE001 -- unreachable or forbidden: say nothing more
            return f"; namespace {self.namespace} was deleted" if is_not_found(exc) else ""
        if namespace.metadata.deletion_timestamp is not None:
            return f"; namespace {self.namespace} is being deleted"
        return ""

    def _finished(self) -> Verdict:
        state = self.job_state
        if not state.failed_reason:
            return Verdict("Complete")
        problems = [f"pod {p.name}: {p.terminated_reason}" for p in self.pods.values()
                    if p.terminated_reason == "OOMKilled"]
        problems += [f"pod {p.name} {p.pod_reason}: {p.pod_message}" for p in self.pods.values()
                     if p.pod_reason in ("Evicted", "DeadlineExceeded", "Preempting", "Shutdown", "NodeLost")]
        problems += [f"pod {name} was deleted by someone outside this session while it ran ({self.pods[name].deleting})"
                     for name in self._gone if self._deleted_by_others()]
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
            pump.nudge()
        for pump in self.logs.values():
            pump.join(timeout=max(0.1, deadline - time.monotonic()))
            if pump.is_alive():
                pump.stop()

    def stop_logs(self) -> None:
        """The session cancels the run (its objects are deleted next): stop reading the logs."""
        self.cancelled = True
        for pump in self.logs.values():
            pump.stop()


def _transient(exc: BaseException) -> bool:
    """Unreachable, or an API server (re)starting: 429 and 5xx answers pass."""
    status = int(getattr(exc, "status", 0) or 0)
    return is_connection_error(exc) or status == 429 or status >= 500


def _describe(exc: Any) -> str:
    if is_connection_error(exc):
        return f"the Kubernetes API became unreachable ({type(exc).__name__}: {str(exc)[:200]})"
    status, reason, message = api_message(exc)
    return f"{reason or type(exc).__name__} ({status}): {message}"
