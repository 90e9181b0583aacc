"""Reaching the Kubernetes API: which kubeconfig, one client per (kubeconfig, context), and every
API failure turned into one paragraph with the Kubernetes reason (Forbidden, quota, unreachable).

The ``kubernetes`` package is imported here only, inside functions (it costs ~300 ms).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import MadError

KUBECONFIG_OPTION = "--mad-k8s-kubeconfig"
RBAC_VERBS = ("create/delete jobs, configmaps, secrets and services, get/list/watch pods and pods/log, "
              "list nodes (optional)")


@dataclass(frozen=True)
class KubeAccess:
    """Where the cluster's credentials come from: a kubeconfig file, or the pod's service account."""

    kubeconfig: str  # '' = in-cluster
    context: str = ""  # kubeconfig context ('' = its current-context)
    origin: str = ""  # for messages: which option / variable / default chose it

    def describe(self) -> str:
        if not self.kubeconfig:
            return "the in-cluster service account"
        return f"kubeconfig {self.kubeconfig}" + (f" (context {self.context})" if self.context else "")


def find_access(option: str | None, configured: str, context: str, env: Mapping[str, str]) -> KubeAccess:
    """``--mad-k8s-kubeconfig`` > ``k8s.kubeconfig`` > ``KUBECONFIG`` > ``~/.kube/config`` > in-cluster.

    Raises MadError (a usage error) when none of them exists.
    """
    candidates = [(option, KUBECONFIG_OPTION), (configured, "k8s.kubeconfig"),
                  (env.get("KUBECONFIG", "").split(os.pathsep)[0], "KUBECONFIG")]
    for value, origin in candidates:
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise MadError(f"the kubeconfig {path} does not exist", where=origin,
                               fix="give the path of a kubeconfig file (kubectl config view --raw shows yours)")
            return KubeAccess(str(path), context, origin)
    default = Path(env.get("HOME") or Path.home()) / ".kube" / "config"
    if default.is_file():
        return KubeAccess(str(default), context, "~/.kube/config")
    if env.get("KUBERNETES_SERVICE_HOST"):
        return KubeAccess("", context, "in-cluster")
    raise MadError("no Kubernetes credentials: no kubeconfig was given, KUBECONFIG is unset, ~/.kube/config "
                   "does not exist and this is not a pod", where="--mad-target k8s",
                   fix=f"pass {KUBECONFIG_OPTION} PATH, set KUBECONFIG, or give k8s.kubeconfig in the context")


_clients: dict[KubeAccess, Any] = {}
_clients_lock = threading.Lock()


def api_client(access: KubeAccess) -> Any:
    """The process's ``kubernetes.client.ApiClient`` for ``access`` (created once). Raises MadError when
    the kubeconfig cannot be read or parsed (what the session's start and preflight call to check it)."""
    with _clients_lock:
        if access not in _clients:
            _clients[access] = _new_client(access)
        return _clients[access]


def _new_client(access: KubeAccess) -> Any:
    from kubernetes import client, config

    if not access.kubeconfig:
        configuration = client.Configuration()
        _loading(access, lambda: config.load_incluster_config(client_configuration=configuration))
        return client.ApiClient(configuration)
    return _loading(access, lambda: config.new_client_from_config(config_file=access.kubeconfig,
                                                                  context=access.context or None))


def _loading(access: KubeAccess, load: Callable[[], Any]) -> Any:
    """``load()``, any failure of reading the credentials (garbage, empty file, broken YAML, a context
    or user missing, an unreadable certificate) as one MadError naming the file and its origin."""
    import yaml
    from kubernetes.config.config_exception import ConfigException

    try:
        return load()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = f"is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
    except (ConfigException, OSError, ValueError) as exc:
        problem = f"cannot be used: {exc}"
    except (TypeError, AttributeError, KeyError) as exc:  # parsed, but a string or a list, not a mapping
        problem = f"does not have a kubeconfig's shape ({type(exc).__name__}: {exc})"
    raise MadError(f"{access.describe()} {' '.join(problem.split())}", where=access.origin,
                   fix="give a kubeconfig with clusters, users, contexts and current-context "
                       "(kubectl --kubeconfig FILE get ns should work)") from None


def close_clients() -> None:
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        with contextlib.suppress(Exception):  # closing the pool of a dead connection
            client.close()


def api_message(exc: BaseException) -> tuple[int, str, str]:
    """(HTTP status, Kubernetes reason, message) of an ApiException (0 for other errors)."""
    status = int(getattr(exc, "status", 0) or 0)
    body = getattr(exc, "body", None)
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    message = str(data.get("message") or getattr(exc, "reason", "") or exc)
    return status, str(data.get("reason") or getattr(exc, "reason", "") or ""), message


def describe_failure(exc: BaseException, action: str, namespace: str, access: KubeAccess) -> str:
    """One paragraph: what failed, the Kubernetes reason, and the fix."""
    if is_connection_error(exc):
        return (f"{action}: the Kubernetes API is unreachable ({_root_cause(exc)}) with {access.describe()}. "
                "Fix: check the kubeconfig's server address and that the cluster is running.")
    status, reason, message = api_message(exc)
    if status == 403 and "because it is being terminated" in message:
        return (f"{action}: namespace {namespace} is being deleted (someone deleted it during the run): {message}. "
                "Fix: let the deletion finish and create the namespace again, or set k8s.namespace to another one.")
    if status == 403 and "exceeded quota" in message:
        return f"{action}: quota exceeded in namespace {namespace}: {message}. Fix: free quota or ask for more."
    if status == 403:
        return (f"{action}: Forbidden (RBAC): {message}. Fix: grant {access.describe()} in namespace "
                f"{namespace}: {RBAC_VERBS}.")
    if status == 401:
        return f"{action}: Unauthorized: {message}. Fix: renew the credentials in {access.describe()}."
    if status == 404 and f'namespaces "{namespace}" not found' in message:
        return (f"{action}: namespace {namespace} does not exist (deleted, or never created): {message}. "
                "Fix: create the namespace or set k8s.namespace.")
    return f"{action}: {reason or 'error'} ({status}): {message}."


def is_connection_error(exc: BaseException) -> bool:
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(exc, (Urllib3Error, ConnectionError, TimeoutError)) and not hasattr(exc, "status")


def _root_cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    return text.split(": ", 1)[-1] if "Connection" in text else text


def is_not_found(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == 404
