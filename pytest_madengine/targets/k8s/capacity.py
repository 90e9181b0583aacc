"""Whether a pod that the scheduler cannot place could ever be placed: its requests against what the
nodes can allocate at all (``status.allocatable``), not against what is free now.

``Insufficient cpu`` on a node that is busy passes; on a node smaller than the request it never
will. Only nodes matching the pod's ``nodeSelector`` count. Quantities are Kubernetes' own
(``500m``, ``64Gi``), read with ``kubernetes.utils.parse_quantity``.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from .config import K8sConfig


def requests_of(config: K8sConfig) -> dict[str, str]:
    """The pod's resource requests (the limits where no request is given, as Kubernetes defaults them)."""
    wanted = {"cpu": config.cpu or config.cpu_limit, "memory": config.memory or config.memory_limit}
    if config.gpu_resource_name and config.gpu_count:
        wanted[config.gpu_resource_name] = str(config.gpu_count)
    return {name: value for name, value in wanted.items() if value}


def shortage(core: Any, config: K8sConfig) -> str:
    """'' unless no node (of those the node selector allows) could ever hold the pod's requests; else
    one sentence naming what is missing. '' too when the nodes cannot be listed (often forbidden)."""
    wanted = requests_of(config)
    if not wanted:
        return ""
    try:
        nodes = core.list_node().items
    except Exception:  # noqa: BLE001 -- listing nodes is often forbidden: the scheduling deadline decides then
        return ""
    selector = dict(config.node_selector)
    eligible = [node for node in nodes
                if all((node.metadata.labels or {}).get(key) == value for key, value in selector.items())]
    if not eligible:
        return f"no node has the labels of k8s.node_selector {selector}" if nodes else ""
    if any(not _missing(node, wanted) for node in eligible):
        return ""
    described = "; ".join(f"{node.metadata.name} lacks {', '.join(_missing(node, wanted))}" for node in eligible)
    asked = ", ".join(f"{name} {value}" for name, value in wanted.items())
    return f"no node can ever hold the pod's requests ({asked}): {described}"


def _missing(node: Any, wanted: dict[str, str]) -> list[str]:
    """The requests ``node`` cannot allocate even when empty, as 'cpu (allocatable 2)'."""
    allocatable = (node.status.allocatable if node.status else None) or {}
    missing = []
    for name, value in wanted.items():
        have = allocatable.get(name, "0")
        if _quantity(have) < _quantity(value):
            missing.append(f"{name} (allocatable {have})")
    return missing


def _quantity(text: str) -> Decimal:
    from kubernetes.utils import parse_quantity

    try:
        return Decimal(parse_quantity(str(text)))
    except ValueError:
        return Decimal(0)
