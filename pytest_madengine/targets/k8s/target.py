"""The Kubernetes target: one Job per model run (an Indexed Job + headless Service when multi-node).

``run`` = prepare (config, model dir, payload, environment; ``MadError`` → the outcome's error)
→ claims (``storage``: created when missing and sized, bound or failed with the reason) → submit (ConfigMap, Secrets, Service, Job, all labelled with the session) → follow (watch API,
pod logs streamed, ``follow``) → gather the outcome (``outcome``) → delete (foreground propagation) unless
``--mad-keep-alive``. Objects of dead sessions are swept at start; the controller removes what a
killed worker left at the end. Every API failure reaches the test as one paragraph with the
Kubernetes reason (``api.describe_failure``).
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...cards import ModelCard
from ...context import Context
from ...errors import MadError
from ...fileio import locked, pid_alive
from ...workload.run import RunOutcome, RunRequest, effective_timeout
from ..base import TargetSettings
from . import capacity, cli, objects
from .api import KubeAccess, api_client, close_clients, describe_failure, find_access, is_not_found
from .outcome import JobRecord, gather_outcome
from .config import K8sConfig, k8s_section, resolve
from .follow import JobFollower
from .handle import K8sHandle
from .prepare import Prepared, load_image, prepare_run
from .storage import ensure_claims

KINDS = ("jobs", "configmaps", "secrets", "services", "persistentvolumeclaims")  # deletion order
OPTIONAL_KINDS = ("persistentvolumeclaims",)  # listing them may be forbidden: cleanup goes on without
NAMESPACES_FILE = "k8s-namespaces"  # in the session dir: namespaces this session's processes used


def _kubeconfig_option(values: dict[str, str | int | None]) -> str | None:
    value = values.get("k8s-kubeconfig")
    return str(value) if value else None


def delete_command(namespace: str, session_id: str) -> str:
    return f"kubectl delete {','.join(KINDS)} -n {namespace} -l {objects.SESSION_LABEL}={session_id}"


@dataclass
class Submitted:
    """One run's objects on the cluster (what cancel_all deletes)."""

    access: KubeAccess
    namespace: str
    created: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    follower: JobFollower | None = None


class K8sTarget:
    """One Kubernetes Job per model run (``targets.base.Target``)."""

    name = "k8s"
    deployment_type = "kubernetes"
    needs_image = True
    pytest_plugins = ("pytest_madengine.targets.k8s.fixtures",)  # mad_k8s, registered when chosen
    options = cli.OPTIONS
    queued_workers = staticmethod(cli.queued_workers)

    def __init__(self, *, session_id: str, session_dir: Path, package_root: Path, context: Context,
                 kubeconfig_option: str | None = None, keep_alive: bool = False, controller: bool = True,
                 build_only: bool = False) -> None:
        self.session_id, self.session_dir = session_id, Path(session_dir)
        self.package_root = Path(package_root).resolve()
        self.context, self.kubeconfig_option = context, kubeconfig_option
        self.keep_alive, self.controller, self.build_only = keep_alive, controller, build_only
        self._active: dict[str, Submitted] = {}
        self._lock = threading.Lock()
        self.jobs_by_model: dict[str, str] = {}  # model name -> Job name of its last run (mad_k8s)

    @classmethod
    def from_settings(cls, settings: TargetSettings) -> K8sTarget:
        options = settings.settings
        return cls(session_id=settings.session_id, session_dir=settings.session_dir,
                   package_root=settings.package_root, context=settings.context,
                   kubeconfig_option=_kubeconfig_option(options.target_options), keep_alive=options.keep_alive,
                   controller=settings.controller, build_only=options.build_only)

    # --- session-level ------------------------------------------------------------------
    def session_access(self) -> tuple[KubeAccess, str]:
        """The context's kubeconfig and namespace (a card may name others for its own runs)."""
        section = k8s_section(self.context.to_json(), "context")
        access = find_access(self.kubeconfig_option, str(section.get("kubeconfig") or ""),
                             str(section.get("context") or ""), os.environ)
        return access, str(section.get("namespace") or "default")

    def preflight(self) -> None:
        """Once per session, before any build: the context's cluster can take Jobs (``preflight``)."""
        from .preflight import check_cluster

        if not self.build_only:
            check_cluster(*self.session_access())

    def sweep_stale(self) -> int:
        """Delete objects of sessions on this host whose pytest process is gone. A missing or unparsable
        kubeconfig is a usage error (MadError); an unreachable API is left for each model to report."""
        if self.build_only:
            return 0
        access, namespace = self.session_access()
        api_client(access)  # a kubeconfig that cannot be parsed is a usage error now, not after the build
        host = objects.label_value(socket.gethostname())
        try:
            found = self._labelled(access, namespace, f"{objects.SESSION_LABEL},{objects.HOST_LABEL}={host}")
        except Exception:  # noqa: BLE001 -- unreachable / forbidden: the runs say so clearly
            return 0
        stale = [(kind, name) for kind, name, labels in found
                 if labels.get(objects.SESSION_LABEL) != self.session_id
                 and not labels.get(objects.KEEP_LABEL) and not pid_alive(labels.get(objects.PID_LABEL, ""))]
        self._delete(access, namespace, stale)
        return len(stale)

    def close(self) -> None:
        self.cancel_all()
        try:
            if self.controller:
                self._remove_session_objects()
        finally:
            close_clients()  # the API clients' connection pools, shared by this process's runs

    def _remove_session_objects(self) -> None:
        for access, namespace in self._used_namespaces():
            with contextlib.suppress(Exception):  # the API may be gone: sweep_stale tidies up next time
                left = self._labelled(access, namespace, f"{objects.SESSION_LABEL}={self.session_id}")
                if self.keep_alive and left:
                    sys.stderr.write(f"pytest-madengine: kept {len(left)} Kubernetes objects (--mad-keep-alive); "
                                     f"delete them with: {delete_command(namespace, self.session_id)}\n")
                elif left:
                    self._delete(access, namespace, [(kind, name) for kind, name, _ in left])

    def cancel_all(self) -> None:
        with self._lock:
            runs, self._active = list(self._active.values()), {}
        for run in runs:
            if run.follower is not None:
                run.follower.stop_logs()
            if not self.keep_alive:
                self._delete(run.access, run.namespace, run.created)

    def handle(self, card: ModelCard, context: Context) -> K8sHandle:
        """The ``mad_k8s`` fixture's value for ``card`` (the namespace and kubeconfig its runs use)."""
        config = resolve(card, context.to_json(), timeout=None)
        access = find_access(self.kubeconfig_option, config.kubeconfig, config.context, os.environ)
        return K8sHandle(api_client(access), config.namespace, self.jobs_by_model, card.name)

    # --- one run --------------------------------------------------------------------------
    def run(self, request: RunRequest) -> RunOutcome:
        started = time.monotonic()
        timeout = effective_timeout(request.card, request.settings)
        try:
            config = resolve(request.card, request.context.to_json(), timeout=timeout)
            access = find_access(self.kubeconfig_option, config.kubeconfig, config.context, os.environ)
            api_client(access)  # a card's own kubeconfig: parsed here, so a bad one is this run's reason
            prepared = prepare_run(request, config, self.package_root, self._labels(request),
                                   run_name=objects.job_name(request.card.name, request.run_id))
            load_image(config, request.image.name, self.session_dir)
        except MadError as exc:
            return self._failed(request, exc.message, timeout, started)
        record = JobRecord(config.namespace, prepared.inputs.name, config.launcher.name, config.nnodes, timeout)
        self.jobs_by_model[request.card.name] = record.name
        run = Submitted(access, config.namespace)
        with self._lock:
            self._active[record.name] = run
        self._note_namespace(access, config.namespace)
        try:
            return self._submit_and_follow(request, config, prepared, record, run, started)
        except KeyboardInterrupt:
            self._forget(record.name)
            if run.follower is not None:
                run.follower.stop_logs()
            self._delete(access, config.namespace, run.created)
            raise

    def _submit_and_follow(self, request: RunRequest, config: K8sConfig, prepared: Prepared, record: JobRecord,
                           run: Submitted, started: float) -> RunOutcome:
        core, batch = self._apis(run.access)
        failure = self._claims_failure(run.access, config, request)
        if failure:
            self._forget(record.name)
            return self._failed(request, failure, record.timeout, started)
        try:
            self._create(core, batch, run, prepared.manifests)
        except Exception as exc:  # noqa: BLE001 -- every API failure becomes the test's reason
            self._forget(record.name)
            self._delete(run.access, run.namespace, run.created)
            action = f"creating the objects of {record.name} in namespace {record.namespace}"
            return self._failed(request, describe_failure(exc, action, record.namespace, run.access),
                                record.timeout, started)
        log_dir = request.work_dir / "pods"
        log_dir.mkdir(parents=True, exist_ok=True)
        run.follower = JobFollower(
            core, batch, namespace=record.namespace, job=record.name, nnodes=config.nnodes, timeout=record.timeout,
            scheduling_timeout=config.scheduling_timeout, mark=prepared.results_mark, live=request.live_output,
            log_path=lambda pod: log_dir / f"rank-{pod.index}-{pod.name}.log",
            capacity_check=lambda: capacity.shortage(core, config))
        verdict = run.follower.follow()
        if verdict.state not in ("Complete", "Failed") and not self.keep_alive:
            self._delete(run.access, run.namespace, run.created)  # stop the pods before reading the last lines
        run.follower.finish_logs(wait=30 if verdict.state in ("Complete", "Failed") else 5)
        if request.on_model_exit is not None:
            request.on_model_exit()
        self._forget(record.name)
        kept = ""
        if self.keep_alive:
            kept = f"kept Job {record.name}; delete it with: {delete_command(record.namespace, self.session_id)}"
        else:
            self._delete(run.access, run.namespace, run.created)
        junit_dir = self.session_dir / "k8s-junit"
        junit_dir.mkdir(parents=True, exist_ok=True)
        return gather_outcome(record, run.follower, verdict, request, duration=time.monotonic() - started,
                               junit_dir=junit_dir, kept=kept, outputs=prepared.outputs,
                               secret_values=prepared.secret_values)

    def _claims_failure(self, access: KubeAccess, config: K8sConfig, request: RunRequest) -> str:
        """'' when the run's claims are ready (``storage``), else why not (one paragraph)."""
        if not config.claims:
            return ""
        from kubernetes import client

        api = api_client(access)
        try:
            ensure_claims(client.CoreV1Api(api), client.StorageV1Api(api), config, self._labels(request))
        except MadError as exc:
            return exc.message
        except Exception as exc:  # noqa: BLE001 -- every API failure becomes the test's reason
            return describe_failure(exc, f"preparing the claims of {request.card.name}", config.namespace, access)
        return ""

    # --- API helpers ----------------------------------------------------------------------
    @staticmethod
    def _apis(access: KubeAccess) -> tuple[Any, Any]:
        from kubernetes import client

        api = api_client(access)
        return client.CoreV1Api(api), client.BatchV1Api(api)

    @staticmethod
    def _create(core: Any, batch: Any, run: Submitted, manifests: list[dict[str, Any]]) -> None:
        creators = {"ConfigMap": core.create_namespaced_config_map, "Secret": core.create_namespaced_secret,
                    "Service": core.create_namespaced_service, "Job": batch.create_namespaced_job}
        for manifest in manifests:
            creators[manifest["kind"]](run.namespace, manifest)
            run.created.append((manifest["kind"].lower() + "s", manifest["metadata"]["name"]))

    def _delete(self, access: KubeAccess, namespace: str, items: list[tuple[str, str]]) -> None:
        """Delete (kind, name) pairs, the Job first with foreground propagation (its pods go with it)."""
        if not items:
            return
        from kubernetes import client

        core, batch = self._apis(access)
        deleters = {"jobs": batch.delete_namespaced_job, "configmaps": core.delete_namespaced_config_map,
                    "secrets": core.delete_namespaced_secret, "services": core.delete_namespaced_service,
                    "persistentvolumeclaims": core.delete_namespaced_persistent_volume_claim}
        body = client.V1DeleteOptions(propagation_policy="Foreground")
        for kind, name in sorted(items, key=lambda item: KINDS.index(item[0])):
            try:
                deleters[kind](name, namespace, body=body)
            except Exception as exc:  # noqa: BLE001 -- gone already, or the API is away: swept later
                if not is_not_found(exc):
                    sys.stderr.write(f"pytest-madengine: could not delete {kind}/{name} in {namespace}: "
                                     f"{describe_failure(exc, 'deleting', namespace, access)}\n")

    def _labelled(self, access: KubeAccess, namespace: str, selector: str) -> list[tuple[str, str, dict[str, str]]]:
        core, batch = self._apis(access)
        listers = {"jobs": batch.list_namespaced_job, "configmaps": core.list_namespaced_config_map,
                   "secrets": core.list_namespaced_secret, "services": core.list_namespaced_service,
                   "persistentvolumeclaims": core.list_namespaced_persistent_volume_claim}
        found = []
        for kind in KINDS:
            try:
                items = listers[kind](namespace, label_selector=selector).items
            except Exception:
                if kind in OPTIONAL_KINDS:
                    continue
                raise
            for item in items:
                if item.metadata.deletion_timestamp is None:
                    found.append((kind, item.metadata.name, dict(item.metadata.labels or {})))
        return found

    # --- bookkeeping ----------------------------------------------------------------------
    def _labels(self, request: RunRequest) -> dict[str, str]:
        labels = {objects.SESSION_LABEL: self.session_id, objects.MODEL_LABEL: objects.label_value(request.card.name),
                  objects.PID_LABEL: str(os.getpid()), objects.HOST_LABEL: objects.label_value(socket.gethostname())}
        if self.keep_alive:
            labels[objects.KEEP_LABEL] = "1"
        return labels

    def _forget(self, name: str) -> None:
        with self._lock:
            self._active.pop(name, None)

    def _note_namespace(self, access: KubeAccess, namespace: str) -> None:
        line = f"{namespace}\t{access.kubeconfig}\t{access.context}\n"
        path = self.session_dir / NAMESPACES_FILE
        with locked(self.session_dir / f"{NAMESPACES_FILE}.lock"):
            if line not in (path.read_text() if path.is_file() else ""):
                with open(path, "a") as handle:
                    handle.write(line)

    def _used_namespaces(self) -> list[tuple[KubeAccess, str]]:
        path = self.session_dir / NAMESPACES_FILE
        if not path.is_file():
            return []
        used = []
        for line in path.read_text().splitlines():
            namespace, kubeconfig, context = (line.split("\t") + ["", ""])[:3]
            used.append((KubeAccess(kubeconfig, context, "session"), namespace))
        return used

    @staticmethod
    def _failed(request: RunRequest, error: str, timeout: int | None, started: float) -> RunOutcome:
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        request.log_path.write_text(f"[pytest-madengine] {error}\n")
        return RunOutcome(exit_code=None, log_path=request.log_path, duration=round(time.monotonic() - started, 3),
                          timeout=timeout, error=error)
