"""Image supply: the image a model runs in — built, reused by content hash, pulled, or given.

One object per process (``ImageSupply``) owns everything image-related a session needs: the
Dockerfile resolution, the one builder (content-hash label, build-once locks shared by xdist
workers), registry pushes and pulls with credentials, the build manifest being read
(``--mad-manifest``) or written (``--mad-build-only``), and batch build lists. Every target
that runs Docker images (the local target, SLURM nodes) gets its images here or through the
same builder (``images.build``).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

from ..cards import ModelCard
from ..context import Context
from ..errors import MadError
from ..fileio import disambiguated
from ..records import SUCCESS, ImageRef, ModelResult
from ..settings import Settings
from .client import docker_client, engine_errors
from .manifest import BatchEntry, Manifest, ManifestWriter
from .progress import Progress


def image_name_suffixes(card_names: Iterable[str]) -> dict[str, str]:
    """Card name → suffix for its image name: '' unless another card's image name would be the same.

    madengine names an image ``ci-<card name with / as _, lowercase>_<Dockerfile>``, so the root
    card ``a_b`` and the ``scripts/a`` card ``b`` would share (and overwrite) one image.
    """
    def plain(name: str) -> str:
        return name.lower().replace("/", "_")

    return {name: unique.removeprefix(plain(name)) for name, unique in disambiguated(card_names, plain).items()}


class ImageSupply:
    """The images of one session (on the controller and on each xdist worker)."""

    def __init__(self, settings: Settings, context: Context, session_dir: Path) -> None:
        self.settings = settings
        self.context = context
        self.session_dir = session_dir
        self._variants: dict[str, tuple[str, ...]] = {}
        self.name_suffixes: dict[str, str] = {}  # card name → image name suffix (clashing names only)
        self.progress: Progress | None = None  # where builds say they started and are alive

    @cached_property
    def manifest(self) -> Manifest | None:
        """The ``--mad-manifest`` being run, or None. Raises MadError for a bad file."""
        if not self.settings.manifest:
            return None
        from .manifest import load_manifest

        return load_manifest(self.settings.manifest)

    @cached_property
    def batch_entries(self) -> dict[str, BatchEntry]:
        """``--mad-batch-manifest`` entries by model name ({} without one). Raises MadError."""
        if not self.settings.batch_manifest:
            return {}
        from .manifest import load_batch_manifest

        return {entry.model_name: entry for entry in load_batch_manifest(self.settings.batch_manifest)}

    @cached_property
    def manifest_writer(self) -> ManifestWriter:
        return ManifestWriter(self.settings.manifest_output, self.context.to_json(), self.settings.registry)

    def dockerfile_variants(self, card: ModelCard) -> list[str]:
        """Package-relative Dockerfiles a card resolves to; [] = decide (or fail) at run time.

        Hundreds of cards share a few Dockerfile prefixes: each prefix is resolved once per session
        (the answer depends on the prefix, the package and the context only).
        """
        if self.manifest is not None or self.settings.use_image:
            return []
        if card.dockerfile not in self._variants:
            self._variants[card.dockerfile] = self._resolve_variants(card)
        return list(self._variants[card.dockerfile])

    def _resolve_variants(self, card: ModelCard) -> tuple[str, ...]:
        from .dockerfiles import resolve_dockerfiles

        try:
            found = resolve_dockerfiles(card, self.settings.package, self.context.data)
        except MadError:
            return ()  # listing never fails on Dockerfiles; the run reports the problem
        return tuple(os.path.relpath(path, self.settings.package) for path in found)

    def build(self, card: ModelCard, dockerfile: str | None, target_arch: str = "") -> ImageRef:
        """Build the card's image (or reuse one with the same content hash); ``target_arch``: its
        ``<image>_<arch>`` variant. Raises MadError."""
        from .build import ensure_image
        from .dockerfiles import resolve_dockerfiles

        root = self.settings.package
        paths = [root / dockerfile] if dockerfile else resolve_dockerfiles(card, root, self.context.data)
        return ensure_image(card, Path(paths[0]), package_root=root, context=self.context,
                            clean_cache=self.settings.clean_cache, log_dir=self.settings.log_dir,
                            lock_dir=self.session_dir / "build-locks", client=docker_client(),
                            target_arch=target_arch, name_suffix=self.name_suffixes.get(card.name, ""),
                            progress=self.progress)

    def image_for_run(self, card: ModelCard, dockerfile: str | None) -> ImageRef:
        """The image for a run: --mad-use-image, a build manifest's image, or a build. Raises MadError."""
        with engine_errors():
            return self._image_for_run(card, dockerfile)

    def _image_for_run(self, card: ModelCard, dockerfile: str | None) -> ImageRef:
        if self.settings.use_image:
            from .manifest import use_image_for

            return self._local(use_image_for(card, self.settings.use_image), self.settings.registry)
        if self.manifest is not None:
            image = self.manifest.image_for(card.test_id, str(self.context.gpu_architecture or ""))
            return self._local(image, self.manifest.registry or self.settings.registry)
        return self.build(card, dockerfile)

    def _local(self, image: ImageRef, registry: str | None) -> ImageRef:
        """Make sure the image exists in the local engine, pulling it when needed."""
        from .registry import ensure_local_image, image_exists

        client = docker_client()
        reference = image.name
        if image.registry_image and not image_exists(client, image.name):
            reference = image.registry_image
        name = ensure_local_image(client, reference, registry, self.settings.package)
        return dataclasses.replace(image, name=name)

    def build_for_manifest(self, card: ModelCard, dockerfile: str | None) -> ModelResult:
        """A --mad-build-only item: build (or reference) the image, push it, add it to the manifest."""
        with engine_errors():
            return self._build_for_manifest(card, dockerfile)

    def _build_for_manifest(self, card: ModelCard, dockerfile: str | None) -> ModelResult:
        from ..results.sinks.summary import BUILT, REFERENCED, REUSED, build_reason

        if self.settings.use_image:  # madengine's build --use-image: record that image, build nothing
            return self._reference_for_manifest(card)
        batch = self.batch_entries.get(card.name)
        if batch is not None and not batch.build_new:
            image = ImageRef(name=batch.registry_image, registry_image=batch.registry_image)
            self.manifest_writer.add(card, image)
            self.manifest_writer.write()
            return ModelResult(model=card.name, status=SUCCESS, image=image.name, reason=build_reason(REFERENCED))
        images, outcomes, pushes = [], [], []
        for arch in self.settings.target_archs or ("",):  # madengine's --target-archs: one image per arch
            image = self.build(card, dockerfile, arch)
            outcome = REUSED if image.reused else BUILT
            registry = (batch.registry if batch and batch.registry else None) or self.settings.registry
            pushed = ""
            if registry:
                from .registry import push_image

                pushed = push_image(docker_client(), image.name, registry, self.settings.package,
                                    target=(batch.registry_image if batch and batch.registry_image and not arch
                                            else None))
                image = dataclasses.replace(image, registry_image=pushed)
            self.manifest_writer.add(card, image)
            images.append(image)
            outcomes.append(outcome)
            pushes += [pushed] if pushed else []
        self.manifest_writer.write()
        overall = BUILT if BUILT in outcomes else REUSED
        return ModelResult(model=card.name, status=SUCCESS, image=", ".join(image.name for image in images),
                           build_duration=sum(image.build_duration for image in images),
                           reason=build_reason(overall, ", ".join(pushes)))

    def _reference_for_manifest(self, card: ModelCard) -> ModelResult:
        """The --mad-use-image image in the manifest for ``card`` (its env_vars get DOCKER_IMAGE_NAME, as
        madengine writes them); nothing is built, pulled or pushed."""
        from ..results.sinks.summary import REFERENCED, build_reason
        from .manifest import use_image_for

        image = use_image_for(card, str(self.settings.use_image))
        env_vars = {**card.env_vars, "DOCKER_IMAGE_NAME": image.name}
        card = dataclasses.replace(card, env_vars=env_vars, raw={**card.raw, "env_vars": env_vars})
        self.manifest_writer.add(card, image)
        self.manifest_writer.write()
        return ModelResult(model=card.name, status=SUCCESS, image=image.name, reason=build_reason(REFERENCED))

    def record_build_failure(self, card: ModelCard, error: str) -> None:
        """A failed build goes into the manifest's summary (never leave an older manifest in place)."""
        self.manifest_writer.add_failure(card, error)
        self.manifest_writer.write()
