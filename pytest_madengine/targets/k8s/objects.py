"""The Kubernetes objects of one model run, as plain JSON-like dicts (what the API receives).

One run = a ConfigMap (the payload), optionally a Secret of secret env vars (``MAD_SECRETS_*``, the
card's ``cred`` variables) and a registry Secret (``kubernetes.io/dockerconfigjson``), a headless
Service when ``nnodes > 1``, and the Job: one pod, or an Indexed Job of ``nnodes`` pods
(``completions = parallelism``, one pod per node by anti-affinity unless ``k8s.pod_anti_affinity``
relaxes it) whose pod ``<job>-0`` is the master. A session may also create the run's
PersistentVolumeClaims (``storage``). Every object carries the
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
from .config import ClaimRequest, K8sConfig
from .payload import PAYLOAD_KEY, PAYLOAD_MOUNT, POD_SCRIPT

SESSION_LABEL = "pytest-madengine.session"
MODEL_LABEL = "pytest-madengine.model"
PID_LABEL = "pytest-madengine.pid"
HOST_LABEL = "pytest-madengine.host"
KEEP_LABEL = "pytest-madengine.keep-alive"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on pods by the Job controller
CONTAINER = "model"
RESULTS_MOUNT = f"{WORKSPACE}/results"
# madengine's MAD_K8S_POD_NAME (its template exports $HOSTNAME): the pod's name from the downward API
POD_NAME_ENV = {"name": "MAD_K8S_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
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


def persistent_volume_claim(claim: ClaimRequest, labels: dict[str, str], namespace: str) -> Manifest:
    """A claim of ``claim.size`` (``storageClassName`` only when a class is named: else the default class)."""
    spec: Manifest = {"accessModes": [claim.access_mode], "resources": {"requests": {"storage": claim.size}}}
    if claim.storage_class:
        spec["storageClassName"] = claim.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(claim.name, labels, namespace),
            "spec": spec}


def headless_service(inputs: JobInputs, namespace: str, port: int) -> Manifest:
    """``<job>-<i>.<service>`` resolves to pod i, ready or not (ranks meet before readiness)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(inputs.service, inputs.labels, namespace),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": {JOB_NAME_LABEL: inputs.name},
                     "ports": [{"name": "master", "port": port, "targetPort": port, "protocol": "TCP"}]}}


def pod_address(job: str, config: K8sConfig, index: int) -> str:
    """Pod ``index`` of the Indexed Job by its DNS name (the Service is named like the Job)."""
    return f"{job}-{index}.{job}.{config.namespace}.svc.{config.cluster_domain}"


def master_address(job: str, config: K8sConfig) -> str:
    """Pod 0 by its fully qualified DNS name ``<job>-0.<service>.<namespace>.svc.<cluster domain>``,
    so no resolver depends on search domains; ``localhost`` for a one-pod Job."""
    return "localhost" if config.nnodes == 1 else pod_address(job, config, 0)


def job_env(job: str, config: K8sConfig, rank: int) -> dict[str, str]:
    """The job variables of one pod, as SLURM's ``node.job_env`` gives them on a node (madengine's
    ``job.sh.j2``), with madengine's Kubernetes names (``templates/kubernetes/job.yaml.j2``:
    ``MAD_DEPLOYMENT_TYPE``, ``MAD_K8S_JOB``, ``MAD_K8S_NAMESPACE``; ``MAD_K8S_POD_NAME`` comes from the
    downward API, see ``POD_NAME_ENV``)."""
    return {
        "MAD_DEPLOYMENT_TYPE": "kubernetes",
        "MAD_K8S_JOB": "true",
        "MAD_K8S_NAMESPACE": config.namespace,
        "MAD_K8S_JOB_NAME": job,
        "MAD_NODE_RANK": str(rank),
        "MAD_TOTAL_NODES": str(config.nnodes),
        "MAD_COLLECT_METRICS": "true" if rank == 0 else "false",  # only the master pod reports
        "RANK": str(rank),
        "LOCAL_RANK": "0",
        "TORCH_ELASTIC_RDZV_TIMEOUT": "3600",
    }


def rank_env(job: str, config: K8sConfig, *, model_name: str = "") -> dict[str, str]:
    """The launcher variables (``workload.launchers``, with the card's and context's ``distributed``
    settings: ``primus``, ``sglang_disagg``) and the job variables (``job_env``) of rank 0; those that
    differ between ranks (``NODE_RANK``, ``RANK``, ``MAD_NODE_RANK``, ``MAD_COLLECT_METRICS``,
    ``MAD_MULTI_NODE_RUNNER``, ``PET_NODE_RANK``, ``SGLANG_DISAGG_ROLE``, ...) also as
    ``MAD_RANK_<i>_<NAME>`` for every rank, named in ``MAD_PER_RANK_VARS``, so the pod's entry script
    exports its own rank's values (picked by the Job's completion index). ``SGLANG_NODE_IPS`` lists the
    pods' DNS names in rank order (pod IPs are not known before the pods exist)."""
    nnodes = max(1, config.nnodes)
    node_ips = ",".join(pod_address(job, config, i) for i in range(nnodes)) if nnodes > 1 else ""
    ranks = [{**distributed_env(config.launcher, node_rank=rank, nnodes=config.nnodes,
                                nproc_per_node=config.nproc_per_node, master_addr=master_address(job, config),
                                master_port=config.master_port, distributed=config.distributed,
                                model_name=model_name, node_ips=node_ips),
              **job_env(job, config, rank)} for rank in range(nnodes)]
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
        "env": [{"name": k, "value": v} for k, v in inputs.env.items()] + [POD_NAME_ENV],
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
        affinity = _anti_affinity(inputs.name, config.pod_anti_affinity)
        if affinity:
            spec["affinity"] = affinity
    return spec


def _anti_affinity(job_name: str, mode: str) -> Manifest:
    """One pod of the Job per node: ``required`` (the default), ``preferred`` (spread where nodes allow,
    e.g. sglang-disagg's 3 pods on 2 nodes) or ``none``."""
    term = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {JOB_NAME_LABEL: job_name}}}
    if mode == "required":
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    if mode == "preferred":
        return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}]}}
    return {}


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
