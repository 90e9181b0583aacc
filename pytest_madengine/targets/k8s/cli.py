"""The Kubernetes target's own ``--mad-*`` options and how many xdist workers its sessions start.

Light on purpose: imported when pytest registers its options, long before a target is chosen.
"""
from __future__ import annotations

from collections.abc import Mapping

from ...settings import Option

DEFAULT_JOBS = 8
OPTIONS: tuple[Option, ...] = (
    Option("k8s-kubeconfig", "str", "kubeconfig of the Kubernetes target (default: k8s.kubeconfig of the "
           "context, KUBECONFIG, ~/.kube/config, in-cluster)", metavar="FILE"),
    Option("k8s-jobs", "int", "Kubernetes Jobs kept in flight at once when -n is not given: that many "
           f"xdist workers submit and follow them (default {DEFAULT_JOBS}; 1 = one at a time)", DEFAULT_JOBS, "N"),
)


def queued_workers(values: Mapping[str, object]) -> int:
    """xdist workers for a session without ``-n``: each submits one Job and follows it."""
    return max(1, int(str(values.get("k8s-jobs") or DEFAULT_JOBS)))
