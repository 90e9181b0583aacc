"""Make the run's image present on a node, and the shared-dir barrier the nodes meet at.

Strategies (slurm.image_distribution): registry (every node pulls the manifest's registry
image), tar (rank 0 saves the image to a tar in the shared dir, the others load it), build
(every node builds the Dockerfile), local (the image must already be there); auto picks registry
when the image has a registry reference, tar for several nodes, else local-or-build.
Every node writes ``image-<rank>.json`` (what it did, when) so the run can be audited.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ...cards import ModelCard
from ...context import Context
from ...fileio import atomic_write, object_name
from ...images.build import ensure_image as build_image
from ...images.client import docker_client
from ...images.registry import image_exists
from ...records import ImageRef

if TYPE_CHECKING:
    from docker import DockerClient

    from .spec import JobSpec


class NodeImageError(RuntimeError):
    pass


def barrier(folder: Path, rank: int, nnodes: int, *, timeout: float) -> None:
    """Wait until every rank has arrived; fail fast when a rank reported failure."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank-{rank}").write_text(str(time.time()))
    deadline = time.monotonic() + timeout
    while True:
        failed = folder / "failed"
        if failed.exists():
            raise NodeImageError(f"another node failed: {failed.read_text().strip()}")
        arrived = sum(1 for r in range(nnodes) if (folder / f"rank-{r}").exists())
        if arrived >= nnodes:
            return
        if time.monotonic() > deadline:
            raise NodeImageError(f"only {arrived} of {nnodes} nodes reached {folder.name} in {timeout:.0f} s")
        time.sleep(0.2)


def report_failure(folder: Path, rank: int, message: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "failed").write_text(f"rank {rank}: {message}")


def choose(strategy: str, image: ImageRef, nnodes: int) -> str:
    if strategy != "auto":
        return strategy
    if image.registry_image:
        return "registry"
    return "tar" if nnodes > 1 else "build"


def _build(client: DockerClient, image: ImageRef, spec: JobSpec, card: ModelCard, context: Context) -> None:
    """Build with the session's one builder: same content-hash label, so a node reuses its image."""
    if not image.dockerfile:
        raise NodeImageError(f"image {image.name} is not on this node and has no Dockerfile to build")
    package = Path(spec.package_root)
    run_dir = Path(spec.run_dir)
    build_image(card, package / image.dockerfile, package_root=package, context=context, clean_cache=False,
                log_dir=run_dir, lock_dir=run_dir.parent / "build-locks", client=client)


def _tar_path(client: DockerClient, cache: Path, image: ImageRef) -> Path:
    """Keyed by the local image id: a tar is reused only for the very same image."""
    key = object_name(client.images.get(image.name).id)
    return cache / f"{key}.tar"


def _save(client: DockerClient, image: ImageRef, tar: Path) -> None:
    tar.parent.mkdir(parents=True, exist_ok=True)
    partial = tar.with_name(f"{tar.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        handle.writelines(client.images.get(image.name).save(named=True))
    os.replace(partial, tar)  # other nodes never see a half-written tar


def _wait_for(pointer: Path, folder: Path, timeout: float) -> Path:
    """Rank 0 names the finished tar in ``pointer``; wait for it."""
    deadline = time.monotonic() + timeout
    while not pointer.exists():
        if (folder / "failed").exists():
            raise NodeImageError(f"rank 0 could not provide the image: {(folder / 'failed').read_text()}")
        if time.monotonic() > deadline:
            raise NodeImageError(f"rank 0 did not provide the image tar within {timeout:.0f} s")
        time.sleep(0.2)
    return Path(pointer.read_text().strip())


def _load(client: DockerClient, tar: Path) -> None:
    with open(tar, "rb") as handle:
        client.images.load(handle)


def ensure_image(spec: JobSpec, card: ModelCard, image: ImageRef, context: Context, *,
                 rank: int, node: str) -> str:
    """Make the image available here; returns the reference to run. Records what was done."""
    client = docker_client()
    run_dir = Path(spec.run_dir)
    strategy = choose(spec.image_distribution, image, spec.nnodes)
    started = time.time()
    action, detail = "present", ""
    reference = image.name
    if strategy == "registry":
        if not image.registry_image:
            raise NodeImageError(f"image {image.name} has no registry reference to pull")
        client.images.pull(image.registry_image)
        reference, action = image.registry_image, "pulled"
    elif strategy == "tar":
        pointer = run_dir / "image-tar"
        if rank == 0:
            if not image_exists(client, image.name):
                _build(client, image, spec, card, context)
            tar = _tar_path(client, Path(spec.image_cache_dir), image)
            action = "reused-tar" if tar.exists() else "saved"
            if not tar.exists():
                _save(client, image, tar)
            atomic_write(pointer, str(tar))
            detail = str(tar)
        else:
            tar = _wait_for(pointer, run_dir / "barriers" / "image", spec.barrier_timeout)
            _load(client, tar)
            action, detail = "loaded", str(tar)
    elif strategy == "local":
        if not image_exists(client, image.name):
            raise NodeImageError(f"image {image.name} is not on node {node}")
    elif not image_exists(client, image.name):  # build
        _build(client, image, spec, card, context)
        action = "built"
    record = {"rank": rank, "node": node, "strategy": strategy, "action": action, "image": reference, "tar": detail,
              "started": started, "finished": time.time()}
    (run_dir / f"image-{rank}.json").write_text(json.dumps(record))
    return reference
