"""The PersistentVolumeClaims a run mounts (``k8s.results_pvc``, ``k8s.data_pvc``), made ready before its Job.

A claim that exists is used as it is. A missing one is created when the settings give its size
(madengine's ``results_storage_size`` / ``data_storage_size``; class and access mode as
``config._claims`` picks them), labelled with the session: the session deletes at its end only the
claims it created (``target.KINDS``). A missing claim without a size is an error naming the setting.
Then each claim must bind: ``Bound`` goes on at once; a class whose binding mode is
``WaitForFirstConsumer`` binds with the pod, so it goes on too; otherwise the claim's events are
read while it waits (at most ``k8s.scheduling_timeout``): ``ProvisioningFailed`` (e.g. a storage class
that does not exist) or ``FailedBinding`` (no volume matches and no class can make one) fail the run
at once with the controller's message, as does a claim that is ``Lost``.
"""
from __future__ import annotations

import time
from typing import Any

from ...errors import MadError
from .api import is_not_found
from .config import ClaimRequest, K8sConfig
from .objects import persistent_volume_claim

HOPELESS_EVENTS = ("ProvisioningFailed", "FailedBinding")
POLL_SECONDS = 0.5


def ensure_claims(core: Any, storage: Any, config: K8sConfig, labels: dict[str, str]) -> list[str]:
    """Create the missing claims (those with a size), wait until each can serve the Job's pods.

    ``core`` / ``storage``: ``CoreV1Api`` / ``StorageV1Api``. Returns the names of the claims created here.
    Raises ``MadError`` (the claim, the reason, the fix); API errors other than not-found propagate.
    """
    created = [claim.name for claim in config.claims if _create_if_missing(core, claim, config.namespace, labels)]
    for claim in config.claims:
        _wait_usable(core, storage, claim, config.namespace, timeout=config.scheduling_timeout)
    return created


def _create_if_missing(core: Any, claim: ClaimRequest, namespace: str, labels: dict[str, str]) -> bool:
    try:
        found = core.read_namespaced_persistent_volume_claim(claim.name, namespace)
    except Exception as exc:
        if not is_not_found(exc):
            raise
    else:
        if found.metadata.deletion_timestamp is None:
            return False
        raise MadError(f"PersistentVolumeClaim {claim.name} is being deleted (pods still use it, or a session "
                       "that created it ended)", where=claim.key, fix="wait until it is gone, then run again")
    if not claim.size:
        size_key = claim.key.replace("_pvc", "_storage_size")
        raise MadError(f"PersistentVolumeClaim {claim.name!r} does not exist in namespace {namespace}",
                       where=claim.key, fix=f"create it, or give {size_key} (e.g. \"10Gi\") so that "
                                            "pytest-madengine creates it for the session")
    try:
        core.create_namespaced_persistent_volume_claim(namespace, persistent_volume_claim(claim, labels, namespace))
    except Exception as exc:
        if getattr(exc, "status", None) == 409:  # another worker of this session made it first
            return False
        raise
    return True


def _waits_for_consumer(storage: Any, storage_class: str) -> bool:
    if not storage_class:
        return False
    try:
        return storage.read_storage_class(storage_class).volume_binding_mode == "WaitForFirstConsumer"
    except Exception:  # noqa: BLE001 -- missing, or classes may not be read: the claim's events tell
        return False


def _volume_available(core: Any, storage_class: str) -> bool:
    """A PersistentVolume of ``storage_class`` is Available (a claim of that class will bind to it)."""
    try:
        volumes = core.list_persistent_volume().items
    except Exception:  # noqa: BLE001 -- volumes may not be listed: the events decide
        return False
    return any((volume.spec.storage_class_name or "") == storage_class and volume.status
               and volume.status.phase == "Available" for volume in volumes)


def _events(core: Any, namespace: str, claim: Any) -> list[Any]:
    selector = f"involvedObject.kind=PersistentVolumeClaim,involvedObject.name={claim.metadata.name}"
    try:
        found = core.list_namespaced_event(namespace, field_selector=selector).items
    except Exception:  # noqa: BLE001 -- events may be forbidden: then only the phase and the deadline tell
        return []
    mine = [event for event in found if event.involved_object.uid == claim.metadata.uid]
    return sorted(mine, key=lambda event: str(event.last_timestamp or event.event_time or ""))


def _wait_usable(core: Any, storage: Any, claim: ClaimRequest, namespace: str, *, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    where = f"{claim.key} {claim.name!r}"
    while True:
        current = core.read_namespaced_persistent_volume_claim(claim.name, namespace)
        phase = current.status.phase if current.status else ""
        if phase == "Bound":
            return
        if phase == "Lost":
            raise MadError(f"PersistentVolumeClaim {claim.name} is Lost: its volume is gone", where=where,
                           fix="delete the claim and let it be created again, or point the setting at another")
        if _waits_for_consumer(storage, current.spec.storage_class_name or ""):
            return
        events = _events(core, namespace, current)
        hopeless = [event for event in events if event.reason in HOPELESS_EVENTS]
        if hopeless and _volume_available(core, current.spec.storage_class_name or ""):
            hopeless = []  # the binder tried to provision before it saw the free volume: it binds next sync
        if hopeless or time.monotonic() >= deadline:
            last = (hopeless or events or [None])[-1]
            reason = f"{last.reason}: {last.message}" if last is not None else "no event from the volume controller"
            waited = "" if hopeless else f" after {timeout} s"
            raise MadError(f"PersistentVolumeClaim {claim.name} is {phase or 'Pending'}{waited}: {reason}",
                           where=where, fix=_fix(current.spec.storage_class_name or ""))
        time.sleep(POLL_SECONDS)


def _fix(storage_class: str) -> str:
    if storage_class:
        return (f"use a storage class the cluster provisions (k8s.storage_class ...), or create a "
                f"PersistentVolume of class {storage_class!r} that the claim can bind")
    return "name a storage class the cluster provisions (k8s.storage_class ...), or create a matching PersistentVolume"
