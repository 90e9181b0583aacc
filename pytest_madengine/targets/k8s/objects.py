"""The Kubernetes objects of one model run, as plain JSON-like dicts (what the API receives).

One run = a ConfigMap (the payload), optionally a Secret of ``MAD_SECRETS_*`` env vars and a
registry Secret (``kubernetes.io/dockerconfigjson``), a headless Service when ``nnodes > 1``,
and the Job: one pod, or an Indexed Job of ``nnodes`` pods (``completions = parallelism``, one
pod per node by anti-affinity) whose pod ``<job>-0`` is the master. Every object carries the
session labels (``SESSION_LABEL`` ...). Pure functions: unit-tested against the official schema
(kubernetes-validate, strict) and golden YAML files.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from ...workload.launchers import distributed_env
from ...workload.layout import WORKSPACE
from .config import K8sConfig
from .payload import PAYLOAD_KEY, PAYLOAD_MOUNT, POD_SCRIPT

SESSION_LABEL = "pytest-madengine.session"
MODEL_LABEL = "pytest-madengine.model"
PID_LABEL = "pytest-madengine.pid"
HOST_LABEL = "pytest-madengine.host"
KEEP_LABEL = "pytest-madengine.keep-alive"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on pods by the Job controller
CONTAINER = "model"
RESULTS_MOUNT = f"{WORKSPACE}/results"
Manifest = dict[str, Any]  # one Kubernetes object as JSON


def label_value(text: str) -> str:
    """``text`` as a valid label value: [A-Za-z0-9-_.], at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def job_name(model: str, run_id: str) -> str:
    """``mad-<model>-<8 hex>``: a DNS label short enough for pod hostnames ``<job>-<index>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40].strip("-") or "model"
    suffix = re.sub(r"[^a-z0-9]", "", run_id.lower())[-8:] or "0"
    return f"mad-{slug}-{suffix}"


@dataclass(frozen=True)
class JobInputs:
    """What the Job needs besides the config: names, image, command and environment."""

    name: str  # Job, Service and ConfigMap name
    labels: dict[str, str]  # the session labels (every object, and the pods)
    image: str
    command: list[str]  # the step command (workload.steps), given to POD_SCRIPT as "$@"
    env: dict[str, str]  # plain values; secrets never go here
    env_secret: str = ""  # Secret whose keys become env vars (MAD_SECRETS_*)
    pull_secrets: tuple[str, ...] = ()  # created registry Secret + existing ones

    @property
    def service(self) -> str:
        return self.name


def _meta(name: str, inputs_labels: dict[str, str], namespace: str) -> Manifest:
    return {"name": name, "namespace": namespace, "labels": dict(inputs_labels)}


def configmap(name: str, labels: dict[str, str], namespace: str, payload: bytes) -> Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, labels, namespace),
            "immutable": True, "binaryData": {PAYLOAD_KEY: base64.b64encode(payload).decode("ascii")}}


def env_secret(name: str, labels: dict[str, str], namespace: str, env: dict[str, str]) -> Manifest:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, labels, namespace),
            "type": "Opaque", "immutable": True, "stringData": dict(env)}


def registry_secret(name: str, labels: dict[str, str], namespace: str, dockerconfigjson: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, labels, namespace),
            "type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": dockerconfigjson}}


def headless_service(inputs: JobInputs, namespace: str, port: int) -> Manifest:
    """``<job>-<i>.<service>`` resolves to pod i, ready or not (ranks meet before readiness)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(inputs.service, inputs.labels, namespace),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": {JOB_NAME_LABEL: inputs.name},
                     "ports": [{"name": "master", "port": port, "targetPort": port, "protocol": "TCP"}]}}


def master_address(job: str, config: K8sConfig) -> str:
    """Pod 0 by its fully qualified DNS name ``<job>-0.<service>.<namespace>.svc.<cluster domain>``
    (the Service is named like the Job), so no resolver depends on search domains."""
    if config.nnodes == 1:
        return "localhost"
    return f"{job}-0.{job}.{config.namespace}.svc.{config.cluster_domain}"


def rank_env(job: str, config: K8sConfig) -> dict[str, str]:
    """The launcher variables (``workload.launchers``) of rank 0; those that differ between ranks
    (``NODE_RANK``, ``MAD_MULTI_NODE_RUNNER``, ``PET_NODE_RANK``, ``SGLANG_DISAGG_ROLE``, ...) also
    as ``MAD_RANK_<i>_<NAME>`` for every rank, named in ``MAD_PER_RANK_VARS``, so the pod's entry
    script exports its own rank's values (picked by the Job's completion index)."""
    ranks = [distributed_env(config.launcher, node_rank=rank, nnodes=config.nnodes,
                             nproc_per_node=config.nproc_per_node, master_addr=master_address(job, config),
                             master_port=config.master_port) for rank in range(max(1, config.nnodes))]
    env = dict(ranks[0])
    varying = sorted(name for name in env if any(other.get(name) != env[name] for other in ranks[1:]))
    if varying:
        env["MAD_PER_RANK_VARS"] = " ".join(varying)
        for rank, values in enumerate(ranks):
            env.update((f"MAD_RANK_{rank}_{name}", values[name]) for name in varying)
    return env


def _resources(config: K8sConfig) -> Manifest:
    requests = {k: v for k, v in (("cpu", config.cpu), ("memory", config.memory)) if v}
    limits = {k: v for k, v in (("cpu", config.cpu_limit), ("memory", config.memory_limit)) if v}
    if config.gpu_resource_name and config.gpu_count:
        requests[config.gpu_resource_name] = limits[config.gpu_resource_name] = str(config.gpu_count)
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def _volumes(inputs: JobInputs, config: K8sConfig) -> tuple[list[Manifest], list[Manifest]]:
    volumes: list[Manifest] = [{"name": "workspace", "emptyDir": {}},
               {"name": "payload", "configMap": {"name": inputs.name}}]
    mounts: list[Manifest] = [{"name": "workspace", "mountPath": WORKSPACE},
              {"name": "payload", "mountPath": PAYLOAD_MOUNT, "readOnly": True}]
    if config.results_pvc:
        volumes.append({"name": "results", "persistentVolumeClaim": {"claimName": config.results_pvc}})
        mounts.append({"name": "results", "mountPath": RESULTS_MOUNT})
    if config.data_pvc:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": config.data_pvc}})
        mounts.append({"name": "data", "mountPath": config.data_mount_path})
    for index, path in enumerate(config.host_paths):
        volumes.append({"name": f"host-{index}", "hostPath": {"path": path.host_path}})
        mounts.append({"name": f"host-{index}", "mountPath": path.mount_path, "readOnly": path.read_only})
    return volumes, mounts


def _container(inputs: JobInputs, config: K8sConfig, mounts: list[Manifest]) -> Manifest:
    container: Manifest = {
        "name": CONTAINER, "image": inputs.image, "imagePullPolicy": config.image_pull_policy,
        "command": ["sh", "-c", POD_SCRIPT, "mad-pod", *inputs.command],
        "env": [{"name": k, "value": v} for k, v in inputs.env.items()],
        "volumeMounts": mounts,
    }
    sources = [name for name in (inputs.env_secret, config.runtime_secret_name) if name]
    if sources:
        container["envFrom"] = [{"secretRef": {"name": name}} for name in sources]
    resources = _resources(config)
    if resources:
        container["resources"] = resources
    return container


def _pod_spec(inputs: JobInputs, config: K8sConfig) -> Manifest:
    volumes, mounts = _volumes(inputs, config)
    spec: Manifest = {"restartPolicy": "Never", "containers": [_container(inputs, config, mounts)],
                      "volumes": volumes,
                      "terminationGracePeriodSeconds": config.termination_grace_period_seconds}
    optional = {"nodeSelector": dict(config.node_selector), "tolerations": [dict(t) for t in config.tolerations],
                "imagePullSecrets": [{"name": name} for name in inputs.pull_secrets],
                "serviceAccountName": config.service_account, "hostIPC": config.host_ipc}
    spec.update({key: value for key, value in optional.items() if value})
    if config.nnodes > 1:
        spec["subdomain"] = inputs.service
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {JOB_NAME_LABEL: inputs.name}}}]}}
    return spec


def job(inputs: JobInputs, config: K8sConfig, namespace: str) -> Manifest:
    spec: Manifest = {"backoffLimit": config.backoff_limit,
                      "template": {"metadata": {"labels": dict(inputs.labels)}, "spec": _pod_spec(inputs, config)}}
    if config.nnodes > 1:
        spec.update(completions=config.nnodes, parallelism=config.nnodes, completionMode="Indexed")
    if config.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = config.active_deadline_seconds
    if config.ttl_seconds_after_finished is not None:
        spec["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(inputs.name, inputs.labels, namespace),
            "spec": spec}
