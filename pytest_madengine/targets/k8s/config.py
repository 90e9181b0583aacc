"""The resolved Kubernetes settings of one model run: preset < card < context, madengine's keys.

The ``k8s`` section (alias ``kubernetes``) and ``distributed`` come from ``presets/k8s.json``,
then the card, then the context (later wins, key by key). A key this module does not know is
warned about once per process (``K8sConfigWarning``), naming the key and where it came from;
a malformed value is a ``MadError`` naming the field.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ...cards import ModelCard
from ...errors import MadError, WarnOnce
from ...jsonfile import require_object
from ...workload.launchers import DEFAULT_MASTER_PORT, Launcher, get_launcher, merged_distributed

SECTIONS = ("k8s", "kubernetes")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
SECRET_STRATEGIES = ("from_local_credentials", "existing", "omit")
VENDOR_RESOURCES = {"AMD": "amd.com/gpu", "NVIDIA": "nvidia.com/gpu"}
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")
_RESOURCE = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_TOLERATION_KEYS = {"key": "key", "operator": "operator", "value": "value", "effect": "effect",
                    "toleration_seconds": "tolerationSeconds", "tolerationSeconds": "tolerationSeconds"}
ANTI_AFFINITY = ("required", "preferred", "none")
_warned = WarnOnce()


class K8sConfigWarning(UserWarning):
    """A key of the ``k8s`` / ``distributed`` settings that pytest-madengine does not use."""


@dataclass(frozen=True)
class HostPath:
    host_path: str
    mount_path: str
    read_only: bool = True


@dataclass(frozen=True)
class ClaimRequest:
    """A PersistentVolumeClaim a run mounts; created (labelled with the session) when missing and
    ``size`` is given (madengine's ``results_storage_size`` / ``data_storage_size``)."""

    name: str
    size: str = ""  # a quantity ("10Gi"); "" = the claim must exist already
    storage_class: str = ""  # "" = the cluster's default class
    access_mode: str = "ReadWriteOnce"  # ReadWriteMany for a multi-pod Job's results, and for data
    key: str = "k8s.results_pvc"  # the setting that names it (errors)


@dataclass(frozen=True)
class K8sConfig:
    """Everything the Job of one model run is built from (Kubernetes' own names in comments)."""

    launcher: Launcher
    nnodes: int  # Indexed Job completions = parallelism
    nproc_per_node: int
    master_port: int
    namespace: str = "default"
    kubeconfig: str = ""
    context: str = ""  # kubeconfig context name
    gpu_count: int = 0  # per pod, requests = limits of gpu_resource_name
    gpu_resource_name: str = ""  # "" = no GPU resource (vendor NONE)
    cpu: str = ""
    cpu_limit: str = ""
    memory: str = ""
    memory_limit: str = ""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()  # existing Secrets, by name
    secret_strategy: str = "from_local_credentials"
    runtime_secret_name: str = ""  # existing Secret whose keys become env vars (envFrom)
    service_account: str = ""
    host_ipc: bool = False
    results_pvc: str = ""  # mounted at /myworkspace/results
    data_pvc: str = ""  # mounted at data_mount_path, MAD_DATAHOME
    claims: tuple[ClaimRequest, ...] = ()  # results_pvc / data_pvc with what creating them needs
    data_mount_path: str = "/data"
    host_paths: tuple[HostPath, ...] = ()
    backoff_limit: int = 0
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None
    scheduling_timeout: int = 300  # seconds until every pod of the gang must be scheduled
    termination_grace_period_seconds: int = 30
    image_loader: tuple[str, ...] = ()  # argv + image: makes a locally built image usable
    cluster_domain: str = "cluster.local"  # in the master's DNS name
    pod_anti_affinity: str = "required"  # pods of one Indexed Job on distinct nodes: required/preferred/none
    distributed: dict[str, Any] = field(default_factory=dict)  # card < context ``distributed`` (launchers)


def load_preset() -> dict[str, dict[str, Any]]:
    text = resources.files("pytest_madengine").joinpath("presets/k8s.json").read_text()
    return json.loads(text)


def warn_once(key: str, where: str, why: str) -> None:
    _warned.warn((key, where), K8sConfigWarning(f"{where}: {key} {why}"))


def k8s_section(source: Any, where: str) -> dict[str, Any]:
    """The ``kubernetes`` then ``k8s`` section of a card or context, merged (``k8s`` wins)."""
    merged: dict[str, Any] = {}
    for key in ("kubernetes", "k8s"):
        value = source.get(key) if isinstance(source, dict) else None
        if value not in (None, ""):
            require_object(value, f"'{key}'", where=where, fix=f'write it as {{"{key}": {{...}}}}')
            merged.update(value)
    return merged


def _section(source: Any, key: str, where: str) -> dict[str, Any]:
    if key == "k8s":
        return k8s_section(source, where)
    value = source.get(key) if isinstance(source, dict) else None
    if value in (None, ""):
        return {}
    return require_object(value, f"'{key}'", where=where, fix=f'write it as {{"{key}": {{...}}}}')


def merged(key: str, card: ModelCard, context: dict[str, Any], *, known: set[str] | None = None) -> dict[str, Any]:
    """preset < card < context for one section; unknown keys warned about (when ``known`` is given)."""
    values = dict(load_preset()[key])
    for where, source in ((f"card {card.name}", card.raw), ("context", context)):
        section = _section(source, key, where)
        for name in section:
            if known is not None and name not in known and not name.startswith("_"):
                warn_once(f"{key}.{name}", where, "is not a setting pytest-madengine knows; it is ignored")
        values.update({k: v for k, v in section.items() if v is not None and not k.startswith("_")})
    return values


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise MadError(f"{value!r} is not a whole number", where=where, fix="give an integer") from None
    if number < minimum:
        raise MadError(f"{number} is below {minimum}", where=where, fix=f"use {minimum} or more")
    return number


def _optional_int(value: Any, where: str) -> int | None:
    return None if value in (None, "") else _int(value, where)


def _name(value: Any, where: str) -> str:
    text = str(value or "").strip()
    if text and not _DNS_NAME.match(text):
        raise MadError(f"{text!r} is not a Kubernetes object name", where=where,
                       fix="use lower-case letters, digits, '-' and '.' (RFC 1123)")
    return text


def _quantity(value: Any, where: str) -> str:
    text = str(value if value is not None else "").strip()
    if text and not _QUANTITY.match(text):
        raise MadError(f"{text!r} is not a Kubernetes quantity", where=where,
                       fix='write e.g. "16", "500m", "64Gi"')
    return text


def _string_map(value: Any, where: str) -> dict[str, str]:
    require_object(value or {}, where, where=where, fix='write it as {"label": "value"}')
    return {str(k): str(v) for k, v in (value or {}).items()}


def _tolerations(value: Any) -> tuple[dict[str, Any], ...]:
    items = value or []
    if not isinstance(items, list):
        raise MadError("tolerations is not a list", where="k8s.tolerations",
                       fix='write [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]')
    result = []
    for index, item in enumerate(items):
        where = f"k8s.tolerations[{index}]"
        require_object(item, "a toleration", where=where, fix='write {"key": ..., "effect": ...}')
        item = {k: v for k, v in item.items() if not str(k).startswith("_")}  # madengine's notes
        unknown = sorted(set(item) - set(_TOLERATION_KEYS))
        if unknown:
            raise MadError(f"unknown key(s) {', '.join(unknown)}", where=where,
                           fix="use key, operator, value, effect, tolerationSeconds")
        result.append({_TOLERATION_KEYS[k]: (int(v) if k.startswith("toleration") else str(v))
                       for k, v in item.items()})
    return tuple(result)


def _host_paths(value: Any) -> tuple[HostPath, ...]:
    if not isinstance(value or [], list):
        raise MadError("host_paths is not a list", where="k8s.host_paths",
                       fix='write [{"host_path": "/data", "mount_path": "/data", "read_only": true}]')
    paths = []
    for index, item in enumerate(value or []):
        where = f"k8s.host_paths[{index}]"
        require_object(item, "a host path", where=where, fix='write {"host_path": ..., "mount_path": ...}')
        host, mount = str(item.get("host_path") or ""), str(item.get("mount_path") or item.get("host_path") or "")
        if not host.startswith("/") or not mount.startswith("/"):
            raise MadError("host_path and mount_path must be absolute paths", where=where,
                           fix='write {"host_path": "/srv/data", "mount_path": "/data"}')
        paths.append(HostPath(host, mount, bool(item.get("read_only", True))))
    return tuple(paths)


def _argv(value: Any, where: str) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    if not isinstance(value, list) or not all(isinstance(part, str) for part in value):
        raise MadError("not a list of strings", where=where,
                       fix='give the command as a list, e.g. ["kind", "load", "docker-image"]; the image is appended')
    return tuple(value)


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    text = str(value or "").strip()
    if text not in choices:
        raise MadError(f"{text!r} is not one of {', '.join(choices)}", where=where, fix=f"use {choices[0]}")
    return text


def _secrets(k8s: dict[str, Any]) -> tuple[str, tuple[str, ...], str]:
    """(strategy, image pull secret names, runtime Secret name) from madengine's two spellings."""
    secrets = require_object(k8s.get("secrets") or {}, "secrets", where="k8s.secrets",
                             fix='write {"strategy": "existing", "image_pull_secret_names": [...]}')
    for key in sorted(k for k in set(secrets) - {"strategy", "image_pull_secret_names", "runtime_secret_name"}
                      if not str(k).startswith("_")):
        warn_once(f"k8s.secrets.{key}", "k8s settings", "is not a setting pytest-madengine knows; it is ignored")
    strategy = _choice(secrets.get("strategy") or "from_local_credentials", SECRET_STRATEGIES,
                       "k8s.secrets.strategy")
    names = list(k8s.get("image_pull_secrets") or []) + list(secrets.get("image_pull_secret_names") or [])
    pull = tuple(dict.fromkeys(_name(n.get("name") if isinstance(n, dict) else n, "k8s.image_pull_secrets")
                               for n in names))
    return strategy, pull, _name(secrets.get("runtime_secret_name"), "k8s.secrets.runtime_secret_name")


def _node_count(card: ModelCard, context: dict[str, Any]) -> int:
    for source, where in ((context, "context"), (card.raw, f"card {card.name}")):
        value = _section(source, "distributed", where).get("nnodes")
        if value not in (None, ""):
            return _int(value, f"{where}: distributed.nnodes", minimum=1)
    return 1


def _gpus(k8s: dict[str, Any], card: ModelCard, vendor: str) -> tuple[int, str]:
    resource = k8s.get("gpu_resource_name")
    resource = VENDOR_RESOURCES.get(vendor.upper(), "") if resource is None else str(resource).strip()
    if resource and not _RESOURCE.match(resource):
        raise MadError(f"{resource!r} is not a resource name", where="k8s.gpu_resource_name",
                       fix='use e.g. "amd.com/gpu" or "nvidia.com/gpu"')
    count = k8s.get("gpu_count")
    if count not in (None, ""):
        return _int(count, "k8s.gpu_count"), resource
    if resource and card.n_gpus < 0:
        raise MadError(f"card n_gpus is -1 (all GPUs of the host), which a pod cannot ask {resource} for",
                       where=f"card {card.name}", fix="set k8s.gpu_count to the GPUs per pod")
    return max(card.n_gpus, 0) if resource else 0, resource


KNOWN = set(load_preset()["k8s"])
KNOWN_DISTRIBUTED = {"launcher", "nnodes", "nproc_per_node", "master_port", "port", "enabled", "backend",
                     "primus", "sglang_disagg", "rendezvous_timeout"}


def _first(k8s: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, str]:
    """(value, key) of the first of ``keys`` that is set: madengine's storage-class fallbacks."""
    return next(((str(k8s[key]).strip(), key) for key in keys if str(k8s.get(key) or "").strip()), ("", keys[-1]))


def _claims(k8s: dict[str, Any], nnodes: int) -> tuple[ClaimRequest, ...]:
    """results_pvc / data_pvc with size, class and access mode, as madengine picks them (``k8s_pvc.py``):
    results class = (multi_node_results_ | nfs_ | storage_class) for several pods, (single_node_results_ |
    local_path_ | storage_class) for one; data class = data_ | nfs_ | storage_class; data is ReadWriteMany."""
    if k8s.get("recreate_shared_data_pvc") not in (None, False, "", "false"):
        raise MadError("recreate_shared_data_pvc asks to delete and recreate the data claim, with its data",
                       where="k8s.recreate_shared_data_pvc",
                       fix="delete the claim yourself (kubectl delete pvc NAME) and set it to false")
    results_keys = (("multi_node_results_storage_class", "nfs_storage_class", "storage_class") if nnodes > 1
                    else ("single_node_results_storage_class", "local_path_storage_class", "storage_class"))
    wanted = (("results_pvc", "results_storage_size", results_keys, "ReadWriteMany" if nnodes > 1 else "ReadWriteOnce"),
              ("data_pvc", "data_storage_size", ("data_storage_class", "nfs_storage_class", "storage_class"),
               "ReadWriteMany"))
    claims = []
    for name_key, size_key, class_keys, mode in wanted:
        name = _name(k8s.get(name_key), f"k8s.{name_key}")
        if name:
            storage_class, class_key = _first(k8s, class_keys)
            claims.append(ClaimRequest(name=name, size=_quantity(k8s.get(size_key), f"k8s.{size_key}"),
                                       storage_class=_name(storage_class, f"k8s.{class_key}"), access_mode=mode,
                                       key=f"k8s.{name_key}"))
    return tuple(claims)


def resolve(card: ModelCard, context: dict[str, Any], *, timeout: int | None) -> K8sConfig:
    """The K8sConfig of one run of ``card``; raises MadError for a malformed setting."""
    k8s = merged("k8s", card, context, known=KNOWN)
    dist = merged("distributed", card, context, known=KNOWN_DISTRIBUTED)
    launcher = get_launcher(dist.get("launcher"))
    if launcher.bare_metal:
        raise MadError(f"launcher {launcher.name!r} submits the card's own SLURM script",
                       where="distributed.launcher", fix="run it with --mad-target slurm")
    gpu_count, resource = _gpus(k8s, card, str(context.get("gpu_vendor") or "NONE"))
    strategy, pull_secrets, runtime_secret = _secrets(k8s)
    nproc = dist.get("nproc_per_node") or gpu_count or (card.n_gpus if card.n_gpus > 0 else 1)
    nnodes = _node_count(card, context)
    deadline = _optional_int(k8s.get("active_deadline_seconds"), "k8s.active_deadline_seconds")
    if deadline is None and timeout:  # the model's timeout plus room for scheduling and image pulls
        deadline = timeout + _int(k8s.get("scheduling_timeout"), "k8s.scheduling_timeout") + 300
    return K8sConfig(
        launcher=launcher, nnodes=nnodes,
        nproc_per_node=_int(nproc, "distributed.nproc_per_node", minimum=1),
        master_port=_int(dist.get("port") or dist.get("master_port") or DEFAULT_MASTER_PORT,  # `port`: madengine's name
                         "distributed.port" if dist.get("port") else "distributed.master_port", minimum=1),
        namespace=_name(k8s.get("namespace") or "default", "k8s.namespace"),
        kubeconfig=str(k8s.get("kubeconfig") or ""), context=str(k8s.get("context") or ""),
        gpu_count=gpu_count, gpu_resource_name=resource,
        **{key: _quantity(k8s.get(key), f"k8s.{key}") for key in ("cpu", "cpu_limit", "memory", "memory_limit")},
        node_selector=_string_map(k8s.get("node_selector"), "k8s.node_selector"),
        tolerations=_tolerations(k8s.get("tolerations")),
        image_pull_policy=_choice(k8s.get("image_pull_policy") or "IfNotPresent", PULL_POLICIES,
                                  "k8s.image_pull_policy"),
        image_pull_secrets=pull_secrets, secret_strategy=strategy, runtime_secret_name=runtime_secret,
        service_account=_name(k8s.get("service_account"), "k8s.service_account"),
        host_ipc=bool(k8s.get("host_ipc")),
        results_pvc=_name(k8s.get("results_pvc"), "k8s.results_pvc"),
        data_pvc=_name(k8s.get("data_pvc"), "k8s.data_pvc"), claims=_claims(k8s, nnodes),
        data_mount_path=str(k8s.get("data_mount_path") or "/data"),
        host_paths=_host_paths(k8s.get("host_paths")),
        backoff_limit=_int(k8s.get("backoff_limit") or 0, "k8s.backoff_limit"),
        active_deadline_seconds=deadline,
        ttl_seconds_after_finished=_optional_int(k8s.get("ttl_seconds_after_finished"),
                                                 "k8s.ttl_seconds_after_finished"),
        scheduling_timeout=_int(k8s.get("scheduling_timeout"), "k8s.scheduling_timeout", minimum=1),
        termination_grace_period_seconds=_int(k8s.get("termination_grace_period_seconds"),
                                              "k8s.termination_grace_period_seconds"),
        image_loader=_argv(k8s.get("image_loader"), "k8s.image_loader"),
        cluster_domain=_name(k8s.get("cluster_domain") or "cluster.local", "k8s.cluster_domain"),
        pod_anti_affinity=_choice(k8s.get("pod_anti_affinity") or "required", ANTI_AFFINITY,
                                  "k8s.pod_anti_affinity"),
        distributed=merged_distributed(_section(card.raw, "distributed", f"card {card.name}"),
                                       _section(context, "distributed", "context")),
    )
