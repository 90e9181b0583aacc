"""The Kubernetes target: config, objects, payload, API access, following, collection."""
from __future__ import annotations

from .target import K8sTarget

__all__ = ["K8sTarget"]
