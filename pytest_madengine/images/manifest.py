"""build_manifest.json (madengine-compatible), batch manifests, and --mad-use-image.

The manifest has madengine's shape::

    {"built_images": {<image>: {docker_image, dockerfile, base_docker, docker_sha, build_duration,
                                registry_image, registry, model, ...}},
     "built_models": {<image>: <the card as madengine writes it, + "docker_image">},
     "context": {...}, "credentials_required": [...], "registry": "...", "summary": {...},
     "session_id": "..."}

``built_models`` is keyed by image name as in madengine; every entry also names its image in
``docker_image`` so that several cards may share one image (the later ones get the key
``<image>::<test id>``). Each card entry carries the card as madengine writes it (full name
``dir/name``, root-relative ``dockerfile``/``scripts``, final ``args``) plus a ``pytest_madengine``
object with what is needed to rebuild the exact ModelCard: ``directory``, the card's own ``args``,
selection ``params`` and ``source``. A manifest written by madengine (no such object) is read too:
the directory is the part of the name before its last ``/``.

Secrets: context values under keys that look secret (password, token, secret, ...) are replaced by
``<redacted>``; credentials are never part of a manifest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cards import ModelCard
from ..errors import MadError
from ..fileio import atomic_write_json, locked
from ..jsonfile import read_json, require_object
from ..records import ImageRef
from ..workload.secrets import REDACTED, scrub_secrets

META_KEY = "pytest_madengine"
IMAGE_FIELDS = ("dockerfile", "base_docker", "docker_sha", "build_duration", "registry_image", "image_id",
                "build_command", "gpu_vendor", "gpu_architecture")


@dataclass
class BuiltImage:
    """One entry of ``built_images``."""

    name: str
    dockerfile: str = ""
    base_docker: str = ""
    docker_sha: str = ""
    build_duration: float = 0.0
    registry_image: str = ""
    image_id: str = ""  # ours: the built image's id (docker_sha is the base image's, as in madengine)
    build_command: str = ""
    gpu_vendor: str = ""
    gpu_architecture: str = ""
    log_file: str = ""

    @classmethod
    def from_ref(cls, image: ImageRef) -> BuiltImage:
        return cls(name=image.name, log_file=image.build_log, **{key: getattr(image, key) for key in IMAGE_FIELDS})

    def to_ref(self) -> ImageRef:
        return ImageRef(name=self.name, build_log=self.log_file, **{key: getattr(self, key) for key in IMAGE_FIELDS})

    def to_json(self, model: str, registry: str | None) -> dict[str, Any]:
        """madengine's ``built_images`` entry (``docker_builder.py``): docker_image, dockerfile,
        base_docker, docker_sha, build_duration, build_command, log_file, gpu_vendor, and
        gpu_architecture when known; plus registry, registry_image and our image_id."""
        data = {"docker_image": self.name, "model": model, "registry": registry or "", "log_file": self.log_file}
        data.update({key: getattr(self, key) for key in IMAGE_FIELDS})
        if not data["gpu_architecture"]:
            del data["gpu_architecture"]  # madengine writes it only when it knows one
        return data


# ---- writing -------------------------------------------------------------------------------------

def _lock_path(path: Path) -> Path:
    """One lock per manifest path, kept in the temp dir so no lock file litters the output."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"pytest-madengine-manifest-{digest}.lock"


def deployment_config(context: dict[str, Any]) -> dict[str, Any] | None:
    """madengine's top-level ``deployment_config`` (``build_orchestrator._save_deployment_config``):
    ``target`` (context ``deploy``, else slurm / k8s / local by which key the context has), the
    context's ``slurm``, ``k8s``, ``kubernetes``, ``distributed``, ``vllm`` (those present),
    ``env_vars`` without ``MIOPEN_USER_DB_PATH``, and ``debug``; None (no key) for a plain local
    run, as madengine leaves it out then."""
    target = context.get("deploy") or ("slurm" if context.get("slurm") else
                                       "k8s" if context.get("k8s") or context.get("kubernetes") else "local")
    env_vars = {k: v for k, v in (context.get("env_vars") or {}).items() if k != "MIOPEN_USER_DB_PATH"}
    config: dict[str, Any] = {"target": target}
    config.update({key: context[key] for key in ("slurm", "k8s", "kubernetes", "distributed", "vllm")
                   if context.get(key) is not None})
    config.update(env_vars=env_vars, debug=context.get("debug", False))
    plain = {"target": "local", "env_vars": {}, "debug": False}
    return None if config == plain else config


def _card_entry(card: ModelCard, image: ImageRef) -> dict[str, Any]:
    entry = card.to_dict()
    entry.pop(META_KEY, None)
    for key in ("env_vars", "docker_build_arg"):  # secrets reach runs by the context or host env, never manifests
        if isinstance(entry.get(key), dict):
            entry[key] = scrub_secrets(entry[key])
    entry["docker_image"] = image.name
    entry[META_KEY] = {"directory": card.directory, "args": card.args, "source": card.source,
                       "params": [list(pair) for pair in card.params]}
    if image.name.endswith(f"_{image.gpu_architecture}") and image.gpu_architecture:
        entry[META_KEY]["target_arch"] = image.gpu_architecture  # one entry per --mad-target-archs image
    return entry


def _entry_test_id(entry: dict[str, Any]) -> str:
    meta = entry.get(META_KEY) or {}
    params = meta.get("params") or []
    name = str(entry.get("name", ""))
    test_id = f"{name}[{'-'.join(f'{k}={v}' for k, v in params)}]" if params else name
    return f"{test_id}@{meta['target_arch']}" if meta.get("target_arch") else test_id


def _put_model(models: dict[str, dict[str, Any]], entry: dict[str, Any]) -> None:
    """Key an entry by its image as madengine does; a second card on one image gets ``image::id``."""
    test_id, image = _entry_test_id(entry), entry["docker_image"]
    same = [key for key, old in models.items() if _entry_test_id(old) == test_id]
    for key in same:
        del models[key]
    key = image if image not in models else f"{image}::{test_id}"
    models[key] = entry


class ManifestWriter:
    """Collects built images and writes build_manifest.json.

    Several processes (xdist workers) may write the same file: :meth:`write` merges under a file
    lock with what other processes of the same ``session_id`` wrote (default: xdist's
    PYTEST_XDIST_TESTRUNUID). A file from another session (or any file when the id is empty) is
    replaced, never merged.
    """

    def __init__(self, path: Path, context: dict, registry: str | None, *, session_id: str | None = None) -> None:
        self.path = Path(path)
        scrubbed = scrub_secrets(dict(context or {}))
        self.context: dict[str, Any] = scrubbed if isinstance(scrubbed, dict) else {}
        self.registry = registry or ""
        # xdist gives every worker of one run the same id, so workers merge without extra wiring.
        self.session_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", "") if session_id is None else session_id
        self.images: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.failures: dict[str, str] = {}

    def add(self, card: ModelCard, image: ImageRef) -> None:
        built = BuiltImage.from_ref(image)
        self.images[built.name] = built.to_json(card.name, self._registry_of(built))
        _put_model(self.models, _card_entry(card, image))
        self.failures.pop(card.test_id, None)

    def add_failure(self, card: ModelCard, error: str) -> None:
        """Record a failed build in the summary (``error`` must already be free of secrets)."""
        self.failures[card.test_id] = error

    def _registry_of(self, built: BuiltImage) -> str:
        from .registry import registry_of_image

        if not built.registry_image:
            return self.registry
        return registry_of_image(built.registry_image) or self.registry or "docker.io"

    def _merged(self) -> dict[str, Any]:
        previous = self._read_same_session()
        images = {**(previous.get("built_images") or {}), **self.images}
        models: dict[str, dict[str, Any]] = {}
        for entry in [*(previous.get("built_models") or {}).values(), *self.models.values()]:
            _put_model(models, entry)
        failures = {item.get("model", ""): item.get("error", "")
                    for item in (previous.get("summary") or {}).get("failed_builds") or []}
        failures.update(self.failures)
        built = {_entry_test_id(entry) for entry in models.values()}
        failures = {k: v for k, v in failures.items() if k and k not in built}
        return {"built_images": images, "built_models": models, "failed_builds": failures}

    def _read_same_session(self) -> dict[str, Any]:
        if not self.session_id or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("session_id") == self.session_id else {}

    def document(self, merged: dict[str, Any]) -> dict[str, Any]:
        images, models = merged["built_images"], merged["built_models"]
        creds = sorted({str(m.get("cred")) for m in models.values() if m.get("cred")})
        summary = {
            "successful_builds": sorted({m["name"] for m in models.values()}),
            "failed_builds": [{"model": k, "error": v} for k, v in sorted(merged["failed_builds"].items())],
            "total_build_time": round(sum(float(i.get("build_duration") or 0) for i in images.values()), 3),
            "successful_pushes": sorted({i["registry_image"] for i in images.values() if i.get("registry_image")}),
            "failed_pushes": [],
        }
        document = {"built_images": images, "built_models": models, "context": self.context,
                    "credentials_required": creds, "registry": self.registry, "session_id": self.session_id,
                    "summary": summary}
        deployment = deployment_config(self.context)
        if deployment is not None:
            document["deployment_config"] = deployment
        return document

    def write(self) -> Path:
        """Write (atomically: temp file + rename) and return the manifest path."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(_lock_path(self.path)):
            atomic_write_json(self.path, self.document(self._merged()), sort_keys=True)
        return self.path


# ---- reading -------------------------------------------------------------------------------------

@dataclass
class ManifestEntry:
    card: ModelCard
    image: ImageRef


@dataclass
class Manifest:
    path: Path
    context: dict[str, Any]
    registry: str
    entries: list[ManifestEntry] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def cards(self) -> list[ModelCard]:
        """One card per test id (a ``--mad-target-archs`` manifest has an entry per architecture)."""
        cards: dict[str, ModelCard] = {}
        for entry in self.entries:
            cards.setdefault(entry.card.test_id, entry.card)
        return list(cards.values())

    def image_for(self, model_name: str, gpu_architecture: str = "") -> ImageRef:
        """The image of a card, by full name or test id (name + selection parameters); of several
        per-architecture images, the one built for ``gpu_architecture`` (or one built for any)."""
        found = [entry.image for entry in self.entries if model_name in (entry.card.test_id, entry.card.name)]
        if not found:
            raise MadError(f"model {model_name!r} is not in the manifest", where=str(self.path),
                           fix="build it with --mad-build-only (same selection), or select only models "
                               f"the manifest holds: {', '.join(sorted(e.card.name for e in self.entries))}")
        if len(found) == 1:
            return found[0]
        for wanted in (gpu_architecture, ""):
            match = next((image for image in found if image.gpu_architecture == wanted), None)
            if match is not None:
                return match
        archs = ", ".join(sorted(image.gpu_architecture for image in found))
        raise MadError(f"the manifest has images of {model_name!r} for {archs} only, not for this host's "
                       f"GPU architecture {gpu_architecture or '(unknown)'}", where=str(self.path),
                       fix=f"build one with --mad-build-only --mad-target-archs {gpu_architecture or '<arch>'}, "
                           "or set the context's gpu_architecture")


def _read_json(path: Path, what: str, fix: str) -> Any:
    if not path.is_file():
        raise MadError(f"{what} does not exist", where=str(path), fix=fix)
    return read_json(path, fix="repair the file or write it again with --mad-build-only")


def _section(data: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise MadError(f"the build manifest has no {key!r} object", where=str(path),
                       fix="use a manifest written by --mad-build-only or `madengine build`")
    return value


def _card_from_entry(entry: Any, key: str, path: Path) -> ModelCard:
    where = f"{path}: built_models[{key!r}]"
    require_object(entry, "the entry", where=where,
                   fix="rewrite the manifest with --mad-build-only")
    raw = {k: v for k, v in entry.items() if k not in (META_KEY, "docker_image")}
    if isinstance(raw.get("env_vars"), dict):  # redacted when written: the run's context supplies them
        raw["env_vars"] = {k: v for k, v in raw["env_vars"].items() if v != REDACTED}
    meta: dict[str, Any] = entry[META_KEY] if isinstance(entry.get(META_KEY), dict) else {}
    full_name = str(raw.get("name") or "")
    if META_KEY in entry:
        directory = meta.get("directory") or None
        raw["args"] = meta.get("args", raw.get("args", ""))
    else:
        directory = full_name.rsplit("/", 1)[0] if "/" in full_name else None
    if directory and full_name.startswith(f"{directory}/"):
        raw["name"] = full_name[len(directory) + 1:]
    card = ModelCard.from_dict(raw, source=str(meta.get("source") or where), directory=directory)
    params = tuple((str(k), str(v)) for k, v in meta.get("params") or ())
    return card.with_params(params) if params else card


def _image_from(images: dict[str, Any], name: str, path: Path, key: str) -> ImageRef:
    info = images.get(name)
    if not isinstance(info, dict):
        raise MadError(f"built_models[{key!r}] names image {name!r}, which built_images lacks",
                       where=str(path), fix="rewrite the manifest with --mad-build-only")
    try:
        duration = float(info.get("build_duration") or 0)
    except (TypeError, ValueError):
        duration = 0.0
    text: dict[str, Any] = {key: str(info.get(key) or "") for key in IMAGE_FIELDS if key != "build_duration"}
    return ImageRef(name=str(info.get("docker_image") or name), build_duration=duration,
                    build_log=str(info.get("log_file") or ""), **text)


def load_manifest(path: Path | str) -> Manifest:
    """Read a build manifest (ours or madengine's); every problem names the file."""
    path = Path(path)
    data = _read_json(path, "build manifest",
                      "give the file written by `pytest --mad-build-only` (build_manifest.json)")
    require_object(data, "the build manifest", where=str(path), verb="holds",
                   fix="use a manifest written by --mad-build-only")
    images, models = _section(data, "built_images", path), _section(data, "built_models", path)
    entries = []
    for key, entry in models.items():
        card = _card_from_entry(entry, key, path)
        image_name = str(entry.get("docker_image") or key)
        entries.append(ManifestEntry(card, _image_from(images, image_name, path, key)))
    context: dict[str, Any] = data["context"] if isinstance(data.get("context"), dict) else {}
    return Manifest(path=path, context=context, registry=str(data.get("registry") or ""),
                    entries=sorted(entries, key=lambda e: e.card.test_id), data=data)


# ---- batch manifests and --mad-use-image ---------------------------------------------------------

@dataclass(frozen=True)
class BatchEntry:
    model_name: str
    build_new: bool
    registry: str = ""
    registry_image: str = ""


def _batch_entry(index: int, item: Any, path: Path) -> BatchEntry:
    where = f"{path}: entry {index}"
    require_object(item, "the entry", where=where,
                   fix='use {"model_name": "...", "build_new": true}')
    name = item.get("model_name")
    if not isinstance(name, str) or not name.strip():
        raise MadError("field 'model_name' is missing or not a non-empty string", where=where,
                       fix="name the model as listed by --collect-only, e.g. \"dummy\" or \"dir/name\"")
    where = f"{where} ({name})"
    build_new = item.get("build_new", False)
    if not isinstance(build_new, bool):
        raise MadError(f"field 'build_new' is {build_new!r}, not true or false", where=where,
                       fix="write build_new as a JSON boolean")
    values = {}
    for key in ("registry", "registry_image"):
        value = item.get(key) or ""
        if not isinstance(value, str):
            raise MadError(f"field {key!r} is a {type(value).__name__}, not a string", where=where,
                           fix=f"write {key} as a string, or leave it out")
        values[key] = value.strip()
    if not build_new and not values["registry_image"]:
        raise MadError("field 'registry_image' is empty but build_new is false, so no image is known",
                       where=where, fix="give the existing image to run in registry_image, or set build_new true")
    return BatchEntry(model_name=name.strip(), build_new=build_new, **values)


def load_batch_manifest(path: Path | str) -> list[BatchEntry]:
    """A batch manifest: a JSON list of ``{model_name, build_new, registry, registry_image}``."""
    path = Path(path)
    data = _read_json(path, "batch manifest", "give a JSON list of {\"model_name\": ..., \"build_new\": ...}")
    if not isinstance(data, list):
        raise MadError(f"the batch manifest holds a {type(data).__name__}, not a list", where=str(path),
                       fix='use [{"model_name": "dummy", "build_new": true}, ...]')
    entries = [_batch_entry(index, item, path) for index, item in enumerate(data)]
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.model_name in seen:
            raise MadError(f"model {entry.model_name!r} is listed twice (entries {seen[entry.model_name]} "
                           f"and {index})", where=str(path), fix="keep one entry per model")
        seen[entry.model_name] = index
    return entries


_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


def use_image_for(card: ModelCard, use_image: str) -> ImageRef:
    """The image for ``--mad-use-image IMAGE|auto`` (auto: the card's env_vars.DOCKER_IMAGE_NAME)."""
    if use_image.strip() == "auto":
        image = card.env_vars.get("DOCKER_IMAGE_NAME", "").strip()
        if not image:
            raise MadError("--mad-use-image auto needs env_vars.DOCKER_IMAGE_NAME, which the card lacks",
                           where=f"{card.source}: card {card.name!r}",
                           fix='add "env_vars": {"DOCKER_IMAGE_NAME": "<image>"} to the card, '
                               "or give the image: --mad-use-image <image>")
        where = f"{card.source}: card {card.name!r}, env_vars.DOCKER_IMAGE_NAME"
    else:
        image, where = use_image.strip(), "--mad-use-image"
    if not _IMAGE_REF.match(image):
        raise MadError(f"{image!r} is not a valid image reference", where=where,
                       fix="use a name such as rocm/pytorch:latest or localhost:5000/team/image:tag")
    return ImageRef(name=image)
