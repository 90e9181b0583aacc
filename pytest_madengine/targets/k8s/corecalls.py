"""The core/v1 calls a session makes before its first Job, without the client's ``CoreV1Api`` class.

kubernetes 37's ``CoreV1Api`` module is 63,000 lines of validated methods and takes 0.6 s to import
on a 2-core VM; ``BatchV1Api``, all a bare client script needs to create a Job, takes 0.26 s. The
session's preflight (the namespace), its stale-object sweep and each run's payload objects
(ConfigMap, Secret, Service) go through the official client's ``ApiClient`` here, with the paths and
response types of the Kubernetes API (api/v1) exactly as the generated class sends them; following
the pods (watches, logs) uses ``CoreV1Api``, imported once the Job exists and the pods start
(issue 22.5). Errors are the client's own: ``ApiException`` for an HTTP error status, urllib3's for
a connection that fails.
"""
from __future__ import annotations

from typing import Any

# core/v1 plurals → the model a list of them deserializes to.
LIST_TYPES = {"configmaps": "V1ConfigMapList", "secrets": "V1SecretList", "services": "V1ServiceList",
              "persistentvolumeclaims": "V1PersistentVolumeClaimList"}
# The Kinds of payload objects → their plural in the API's paths.
PLURALS = {"ConfigMap": "configmaps", "Secret": "secrets", "Service": "services",
           "PersistentVolumeClaim": "persistentvolumeclaims"}
_JSON = "application/json"


class CoreCalls:
    """core/v1 reads, lists, creates and deletes on one ``kubernetes.client.ApiClient``."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def read_namespace(self, name: str, *, timeout: float | None = None) -> Any:
        """The ``V1Namespace`` ``name``."""
        return self._call("GET", "/api/v1/namespaces/{name}", {"name": name}, returns="V1Namespace", timeout=timeout)

    def list(self, plural: str, namespace: str, *, label_selector: str) -> list[Any]:
        """The items (typed, e.g. ``V1ConfigMap``) of ``plural`` in ``namespace`` matching the selector."""
        found = self._call("GET", "/api/v1/namespaces/{namespace}/" + plural, {"namespace": namespace},
                           query=[("labelSelector", label_selector)], returns=LIST_TYPES[plural])
        return list(found.items or [])

    def create(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create the object ``manifest`` (a ConfigMap, Secret, Service or PersistentVolumeClaim)."""
        self._call("POST", "/api/v1/namespaces/{namespace}/" + PLURALS[manifest["kind"]], {"namespace": namespace},
                   body=manifest)

    def delete(self, plural: str, namespace: str, name: str, *, body: Any) -> None:
        """Delete ``plural/name`` (``body``: the ``V1DeleteOptions``)."""
        self._call("DELETE", "/api/v1/namespaces/{namespace}/" + plural + "/{name}",
                   {"namespace": namespace, "name": name}, body=body)

    def _call(self, method: str, path: str, path_params: dict[str, str], *, query: list[tuple[str, str]] | None = None,
              body: Any = None, returns: str | None = None, timeout: float | None = None) -> Any:
        headers = {"Accept": _JSON, **({"Content-Type": _JSON} if body is not None else {})}
        request = self.api.param_serialize(method=method, resource_path=path, path_params=path_params,
                                           query_params=query or [], header_params=headers, body=body,
                                           auth_settings=["BearerToken"])
        response = self.api.call_api(*request, _request_timeout=timeout)
        response.read()
        return self.api.response_deserialize(response_data=response, response_types_map={"2XX": returns}).data
