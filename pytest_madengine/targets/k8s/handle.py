"""What the ``mad_k8s`` fixture gives conftest code: the API client, the namespace, the model's Job."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .objects import JOB_NAME_LABEL


@dataclass
class K8sHandle:
    """The Kubernetes side of one model item.

    ``api``: a ``kubernetes.client.ApiClient`` (shared by the process; do not close it);
    ``namespace``: where the model's objects go; ``job_name``: the Job of the item's last run
    ('' before it ran). The Job and its pods are deleted after the run unless ``--mad-keep-alive``.
    """

    api: Any
    namespace: str
    runs: dict[str, str] = field(default_factory=dict)  # model name -> Job name (the target's record)
    model: str = ""

    @property
    def job_name(self) -> str:
        return self.runs.get(self.model, "")

    def job(self) -> Any:
        """The model's ``V1Job``, or None when it did not run yet or was deleted."""
        from kubernetes import client

        if not self.job_name:
            return None
        try:
            return client.BatchV1Api(self.api).read_namespaced_job(self.job_name, self.namespace)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self) -> list[Any]:
        """The ``V1Pod``s of the model's Job (empty once deleted)."""
        from kubernetes import client

        if not self.job_name:
            return []
        selector = f"{JOB_NAME_LABEL}={self.job_name}"
        return list(client.CoreV1Api(self.api).list_namespaced_pod(self.namespace, label_selector=selector).items)
