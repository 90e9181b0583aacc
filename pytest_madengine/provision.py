"""Getting the image a model runs in: build, reuse, pull from a manifest's registry, or given."""
from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

from .cards import ModelCard
from .errors import MadError
from .records import SUCCESS, ImageRef, ModelResult


@cache
def docker_client() -> Any:
    """One Docker client per process (connection pooling keeps per-model overhead low)."""
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - docker raises several types for a dead daemon
        raise MadError(f"cannot reach the Docker daemon ({exc.__class__.__name__}: {exc})",
                       where="Docker engine",
                       fix="start dockerd (or set DOCKER_HOST) and check `docker info` works") from None
    return client


def build_image(session: Any, card: ModelCard, dockerfile: str | None) -> ImageRef:
    """Build the card's image (or reuse one with the same content hash)."""
    from .dockerfiles import resolve_dockerfiles
    from .images import ensure_image

    root = session.settings.package
    paths = [root / dockerfile] if dockerfile else resolve_dockerfiles(card, root, session.context.data)
    return ensure_image(card, Path(paths[0]), package_root=root, context=session.context,
                        clean_cache=session.settings.clean_cache, log_dir=session.settings.log_dir,
                        lock_dir=session.session_dir / "build-locks", client=docker_client())


def provide_image(session: Any, card: ModelCard, dockerfile: str | None) -> ImageRef:
    """The image for a run: --mad-use-image, a build manifest's image, or a build."""
    settings = session.settings
    if settings.use_image:
        from .manifest import use_image_for

        return _local(session, use_image_for(card, settings.use_image), settings.registry)
    if session.manifest is not None:
        image = session.manifest.image_for(card.name)
        return _local(session, image, session.manifest.registry or settings.registry)
    return build_image(session, card, dockerfile)


def _local(session: Any, image: ImageRef, registry: str | None) -> ImageRef:
    """Make sure the image exists in the local engine, pulling it when needed."""
    from .registry import ensure_local_image, image_exists

    client = docker_client()
    reference = image.name
    if image.registry_image and not image_exists(client, image.name):
        reference = image.registry_image
    name = ensure_local_image(client, reference, registry, session.settings.package)
    return dataclasses.replace(image, name=name)


def build_for_manifest(session: Any, card: ModelCard, dockerfile: str | None) -> ModelResult:
    """A --mad-build-only item: build (or reference) the image, push it, add it to the manifest."""
    settings = session.settings
    batch = session.batch_entries.get(card.name)
    from .results.summary import BUILT, REFERENCED, REUSED, build_reason

    pushed = ""
    if batch is not None and not batch.build_new:
        image = ImageRef(name=batch.registry_image, registry_image=batch.registry_image)
        outcome = REFERENCED
    else:
        image = build_image(session, card, dockerfile)
        outcome = REUSED if image.reused else BUILT
        registry = (batch.registry if batch and batch.registry else None) or settings.registry
        if registry:
            from .registry import push_image

            pushed = push_image(docker_client(), image.name, registry, settings.package,
                                target=(batch.registry_image if batch and batch.registry_image else None))
            image = dataclasses.replace(image, registry_image=pushed)
    session.manifest_writer.add(card, image)
    session.manifest_writer.write()
    return ModelResult(model=card.name, status=SUCCESS, image=image.name,
                       build_duration=image.build_duration, reason=build_reason(outcome, pushed))

