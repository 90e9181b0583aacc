"""The Kubernetes target's session preflight: before any build, one check that the session's
cluster can take its Jobs — the kubeconfig parses, the API server answers, the namespace exists
and the user may create Jobs there (a ``SelfSubjectAccessReview``, the API behind
``kubectl auth can-i create jobs``).
"""
from __future__ import annotations

from typing import Any

from ...errors import MadError
from .api import KubeAccess, api_client, api_message, is_connection_error

# Seconds each preflight API call may take (an unreachable server must not hold the session).
PREFLIGHT_TIMEOUT = 10


def check_cluster(access: KubeAccess, namespace: str) -> None:
    """Raise one MadError (naming the kubeconfig, the server address and the fix) unless Jobs can be
    created in ``namespace``."""
    api = api_client(access)  # MadError naming the file for any kubeconfig it cannot use
    server = str(getattr(api.configuration, "host", "") or "?")
    where = f"--mad-target k8s ({access.describe()}, server {server})"
    allowed = _may_create_jobs(api, namespace, where, server)
    _check_namespace(api, namespace, where)
    if not allowed:
        raise MadError(f"the user may not create Jobs in namespace {namespace}", where=where,
                       fix=f"grant create on jobs.batch in {namespace} (check: kubectl auth can-i create jobs "
                       f"-n {namespace})")


def _may_create_jobs(api: Any, namespace: str, where: str, server: str) -> bool:
    from kubernetes import client

    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="create", group="batch",
                                                        resource="jobs")))
    try:
        answer = client.AuthorizationV1Api(api).create_self_subject_access_review(
            review, _request_timeout=PREFLIGHT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - urllib3, ApiException: both told apart below
        raise _failure(exc, where, server) from None
    return bool(answer.status and answer.status.allowed)


def _check_namespace(api: Any, namespace: str, where: str) -> None:
    """A missing namespace is an error; a user who may not read namespaces is let through (the
    Jobs' creation then says more)."""
    from kubernetes import client

    try:
        client.CoreV1Api(api).read_namespace(namespace, _request_timeout=PREFLIGHT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        status = getattr(exc, "status", None)
        if status == 404:
            raise MadError(f"the namespace {namespace} does not exist", where=where,
                           fix=f"create it (kubectl create namespace {namespace}) or set k8s.namespace in the "
                           "context") from None
        if status not in (401, 403):
            raise _failure(exc, where, "") from None


def _failure(exc: BaseException, where: str, server: str) -> MadError:
    if is_connection_error(exc):
        return MadError(f"the Kubernetes API server {server} does not answer ({exc.__class__.__name__})",
                        where=where, fix="start the cluster, or fix the server address in the kubeconfig "
                        "(`kubectl cluster-info` should answer)")
    status, reason, message = api_message(exc)
    if status == 401:
        return MadError(f"the API server refused the credentials: {message}", where=where,
                        fix="renew the credentials in the kubeconfig")
    return MadError(f"the Kubernetes API failed: {reason or 'error'} ({status}): {message}", where=where,
                    fix="check `kubectl auth can-i create jobs` against this cluster")
