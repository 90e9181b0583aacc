"""Image builds: build specs, content hash, reuse by hash, build-once locking across processes.

An image is rebuilt only when what goes into it changes: the content hash covers the Dockerfile,
every file of the build context that is sent to the engine (``.dockerignore`` respected) and the
build args. It is stored as the image label ``pytest-madengine.content-hash``; an image with the
right name and label is reused without a build. The build context we send is exactly the hashed
file set (we make the tar ourselves), so the hash cannot miss a file the build sees.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cards import ModelCard
from ..errors import MadError
from ..fileio import locked, printable
from ..records import ImageRef
from ..workload.credentials import credential_env
from ..workload.paths import confined
from . import buildkit
from .buildinfo import arch_default, base_digest, gpu_vendor_of
from .client import docker_client
from .contenthash import content_hash, context_files
from .dockerfiles import image_name
from .progress import Progress, announced

HASH_LABEL = "pytest-madengine.content-hash"
_DOCKERFILE_IN_TAR = ".pytest-madengine.Dockerfile"
# Build args Docker accepts without an ARG declaration.
_PREDEFINED_ARGS = {name for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
                    for name in (base, base.lower())}
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?", re.IGNORECASE | re.MULTILINE)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
ARCH_ARG = "MAD_SYSTEM_GPU_ARCHITECTURE"
SECRETS_PREFIX = "MAD_SECRETS_"
TOOLS_DISPLAY = buildkit.TOOLS_DIR.as_posix()
_process_lock = threading.Lock()


@dataclass(frozen=True)
class BuildSpec:
    image: str
    dockerfile: Path  # absolute
    dockerfile_rel: str  # package-relative, as shown in manifests and perf.csv
    context_dir: Path
    files: tuple[str, ...]  # context-relative paths sent to the engine
    build_args: dict[str, str]
    base_docker: str
    content_hash: str
    buildkit: str = ""  # why the Dockerfile needs BuildKit ('' = the classic builder through the SDK)
    tools_dir: Path | None = None  # docker/common, when the Dockerfile reads the tools build context
    tools_files: tuple[str, ...] = ()
    gpu_vendor: str = ""
    gpu_architecture: str = ""
    secret_values: tuple[str, ...] = field(default=(), repr=False)  # masked in build logs and errors

    def redact(self, text: str) -> str:
        """``text`` with every secret build-arg value replaced (BuildKit echoes ARG values in step names)."""
        for value in self.secret_values:
            text = text.replace(value, "<redacted>")
        return text

    def build_command(self, nocache: bool) -> str:
        """The build as one display line (madengine's manifest ``build_command``; secrets masked)."""
        from ..workload.secrets import REDACTED, is_secret_key

        argv = ["docker", "build", *(["--no-cache"] if nocache else []), "--network=host"]
        if self.tools_dir is not None:
            argv += ["--build-context", f"tools={TOOLS_DISPLAY}"]
        argv += ["-t", self.image, "-f", self.dockerfile_rel]
        for key, value in sorted(self.build_args.items()):
            argv += ["--build-arg", f"{key}={REDACTED if is_secret_key(key) else value}"]
        return " ".join(shlex.quote(part) for part in [*argv, str(self.context_dir)])


def dockerfile_args(text: str) -> dict[str, str | None]:
    """``ARG`` names declared in a Dockerfile with their defaults (None when none)."""
    return {match.group(1): match.group(2) for match in _ARG.finditer(text)}


def build_args_for(text: str, card: ModelCard, context: Any, secrets: dict[str, str] | None = None) -> dict[str, str]:
    """The build args the Dockerfile declares (plus Docker's predefined proxy args).

    ``secrets``: the host's ``MAD_SECRETS_*`` and the card's ``<CRED>_<KEY>`` values
    (``workload.credentials``), after the card's own args; their values stay out of the content hash.
    """
    offered: dict[str, str] = {}
    arch = getattr(context, "gpu_architecture", "") or ""
    if arch:
        offered["MAD_SYSTEM_GPU_ARCHITECTURE"] = str(arch)
    offered.update(card.docker_build_arg)
    offered.update(secrets or {})
    # The run context (the user's command line) wins over the card, as for env vars.
    offered.update({str(k): str(v) for k, v in (getattr(context, "docker_build_args", None) or {}).items()})
    declared = dockerfile_args(text)
    return {k: v for k, v in sorted(offered.items()) if k in declared or k in _PREDEFINED_ARGS}


def base_image(text: str, build_args: dict[str, str]) -> str:
    """The first ``FROM`` image with ``$ARG`` references resolved (build arg, else ARG default)."""
    match = _FROM.search(text)
    if not match:
        return ""
    defaults = {k: v or "" for k, v in dockerfile_args(text[: match.start()]).items()}
    values = {**defaults, **build_args}
    return _VAR.sub(lambda m: values.get(m.group(1), ""), match.group(1))


def _tools(card: ModelCard, package_root: Path, text: str) -> tuple[Path | None, tuple[str, ...]]:
    """The package's docker/common and its files, when the Dockerfile reads the tools context."""
    if not buildkit.uses_tools(text):
        return None, ()
    tools_dir = package_root / buildkit.TOOLS_DIR
    if not tools_dir.is_dir():
        raise MadError(f"the Dockerfile reads the 'tools' build context (--from=tools), but the package has no "
                       f"{TOOLS_DISPLAY} directory", where=f"{card.source}: card {card.name!r}",
                       fix=f"create {TOOLS_DISPLAY} with the files the Dockerfile copies (madengine passes it "
                           "as --build-context tools=docker/common)")
    return tools_dir, tuple(context_files(tools_dir, None, []))


def build_spec(card: ModelCard, dockerfile: Path, *, package_root: Path, context: Any,
               log_dir: Path | None = None, target_arch: str = "", name_suffix: str = "") -> BuildSpec:
    package_root = Path(package_root).resolve()
    dockerfile = Path(dockerfile).resolve()
    if card.dockercontext:
        where = f"{card.source}: card {card.name!r}, field 'dockercontext'"
        context_dir = confined(package_root, card.dockercontext, where=where, field="dockercontext")
        if not context_dir.is_dir():
            raise MadError(f"dockercontext {card.dockercontext!r} is not a directory under {package_root}",
                           where=where, fix="give a package-root-relative directory, e.g. '.'")
    else:
        context_dir = dockerfile.parent
    text = dockerfile.read_text(errors="replace")
    # madengine passes the host's MAD_SECRETS* variables as build args too (core/context.py).
    secrets = {**{k: v for k, v in os.environ.items() if k.startswith(SECRETS_PREFIX)},
               **credential_env(card, package_root)}
    args = build_args_for(text, card, context, secrets)
    if target_arch and ARCH_ARG in dockerfile_args(text):
        args[ARCH_ARG] = target_arch
    tools_dir, tools_files = _tools(card, package_root, text)
    inside = dockerfile.is_relative_to(context_dir)
    rel = str(dockerfile.relative_to(context_dir)) if inside else None
    excludes = [str(Path(log_dir).resolve().relative_to(context_dir))] \
        if log_dir and Path(log_dir).resolve().is_relative_to(context_dir) else []
    files = context_files(context_dir, rel, excludes)
    # Secret values stay out of the hash (an image label): a changed password needs no rebuild.
    hashed_args = {k: "<secret>" if k in secrets else v for k, v in args.items()}
    digest = content_hash(dockerfile, context_dir, files, hashed_args)
    if tools_dir is not None:
        digest = hashlib.sha256(f"{digest}\0tools\0{content_hash(dockerfile, tools_dir, tools_files, {})}"
                                .encode()).hexdigest()
    return BuildSpec(
        image=image_name(card, dockerfile, name_suffix) + (f"_{target_arch}" if target_arch else ""),
        dockerfile=dockerfile,
        dockerfile_rel=_package_relative(dockerfile, package_root), context_dir=context_dir,
        files=tuple(files), build_args=args, base_docker=base_image(text, args), content_hash=digest,
        buildkit=buildkit.buildkit_reason(text), tools_dir=tools_dir, tools_files=tools_files,
        gpu_vendor=gpu_vendor_of(dockerfile, text),
        gpu_architecture=target_arch or args.get(ARCH_ARG) or arch_default(text),
        secret_values=tuple(sorted({v for k, v in args.items() if k in secrets and len(v) >= 4}, key=len, reverse=True)),
    )


def _package_relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


@contextmanager
def image_lock(lock_dir: Path | None, image: str) -> Iterator[None]:
    """Holds an exclusive lock per image name across processes (and threads of this one)."""
    if lock_dir is None:
        with _process_lock:
            yield
        return
    with locked(Path(lock_dir) / f"{image}.lock"):
        yield


def _built_in_session(lock_dir: Path | None, spec: BuildSpec) -> bool:
    """Whether a clean-cache build of this exact content already ran in this session."""
    marker = Path(lock_dir) / f"{spec.image}.built" if lock_dir else None
    return bool(marker and marker.is_file() and marker.read_text().strip() == spec.content_hash)


def _mark_built(lock_dir: Path | None, spec: BuildSpec) -> None:
    if lock_dir:
        (Path(lock_dir) / f"{spec.image}.built").write_text(spec.content_hash)


def find_reusable(client: Any, spec: BuildSpec) -> Any | None:
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(spec.image)
    except ImageNotFound:
        return None
    return image if (image.labels or {}).get(HASH_LABEL) == spec.content_hash else None


def ensure_image(card: ModelCard, dockerfile: Path, *, package_root: Path, context: Any, clean_cache: bool,
                 log_dir: Path, lock_dir: Path | None, client: Any = None, target_arch: str = "",
                 name_suffix: str = "", progress: Progress | None = None) -> ImageRef:
    """Reuse the card's image when its content hash matches, else build it (once across workers).

    ``name_suffix`` follows the card name in the image name (set when two cards' names clash).

    With ``clean_cache`` the image is rebuilt without the build cache, once per session: later
    calls sharing ``lock_dir`` (other items, xdist workers) reuse that fresh build. ``target_arch``
    builds the ``<image>_<arch>`` variant with ``MAD_SYSTEM_GPU_ARCHITECTURE=<arch>`` (madengine's
    ``--target-archs``). Builds use BuildKit through the docker CLI wherever it is available
    (``buildkit.default_cli``), the SDK's classic builder only where it is not.
    ``progress`` (a build, not a reuse): one line when it starts (model, image, Dockerfile, build
    log), one every ``HEARTBEAT`` seconds while it runs, one when it ends; with ``progress.live``
    also every line of the build's output.
    """
    if client is None:
        client = docker_client()
    spec = build_spec(card, dockerfile, package_root=package_root, context=context, log_dir=log_dir,
                      target_arch=target_arch, name_suffix=name_suffix)
    log_path = Path(log_dir) / f"{spec.image}.build.log"
    with image_lock(lock_dir, spec.image):
        existing = find_reusable(client, spec)
        if existing is not None and (not clean_cache or _built_in_session(lock_dir, spec)):
            return _ref(client, spec, existing.id, 0.0, reused=True, log_path=log_path, nocache=False)
        started = time.monotonic()
        build = build_with_buildkit if spec.buildkit or buildkit.default_cli() else build_image
        with announced(progress, card.name, spec.image, spec.dockerfile_rel, log_path):
            image_id = build(client, spec, card=card, nocache=clean_cache, log_path=log_path,
                             live=progress.live if progress else None)
        if clean_cache:
            _mark_built(lock_dir, spec)
        return _ref(client, spec, image_id, time.monotonic() - started, reused=False, log_path=log_path,
                    nocache=clean_cache)


def _ref(client: Any, spec: BuildSpec, image_id: str, duration: float, *, reused: bool, log_path: Path,
         nocache: bool) -> ImageRef:
    return ImageRef(name=spec.image, dockerfile=spec.dockerfile_rel, base_docker=spec.base_docker,
                    docker_sha=base_digest(client, spec.base_docker), build_duration=round(duration, 3),
                    reused=reused, build_log=str(log_path) if log_path.exists() else "", image_id=image_id,
                    build_command=spec.build_command(nocache), gpu_vendor=spec.gpu_vendor,
                    gpu_architecture=spec.gpu_architecture)


def _build_context(spec: BuildSpec) -> tuple[Any, str]:
    """A tar of exactly the hashed files (+ the Dockerfile when it lies outside the context)."""
    from docker.utils.build import create_archive

    rel = spec.dockerfile.relative_to(spec.context_dir).as_posix() \
        if spec.dockerfile.is_relative_to(spec.context_dir) else None
    extra = [] if rel else [(_DOCKERFILE_IN_TAR, spec.dockerfile.read_text(errors="replace"))]
    archive = create_archive(root=str(spec.context_dir), files=list(spec.files), extra_files=extra)
    return archive, rel or _DOCKERFILE_IN_TAR


def build_image(client: Any, spec: BuildSpec, *, card: ModelCard, nocache: bool, log_path: Path,
                live: Callable[[str], None] | None = None) -> str:
    """Build through the low-level API, streaming the log to ``log_path`` (and each line to
    ``live``); returns the image id."""
    from docker.errors import APIError

    log_path.parent.mkdir(parents=True, exist_ok=True)
    archive, dockerfile_name = _build_context(spec)
    tail: deque[str] = deque(maxlen=15)
    step, error, image_id = "", "", ""
    with archive, log_path.open("w", encoding="utf-8") as log:
        log.write(f"# image {spec.image} from {spec.dockerfile_rel}, context {spec.context_dir}\n")
        log.write(f"# build args: {', '.join(sorted(spec.build_args)) or 'none'}; nocache={nocache}\n")
        try:
            stream = client.api.build(
                fileobj=archive, custom_context=True, dockerfile=dockerfile_name, tag=spec.image,
                buildargs=spec.build_args, nocache=nocache, rm=True, forcerm=True, decode=True,
                network_mode="host",  # madengine builds with --network=host
                labels=_labels(spec),
            )
            for chunk in stream:
                text = spec.redact(chunk.get("stream", ""))
                if text:
                    log.write(text)
                    tail.extend(line for line in text.splitlines() if line.strip())
                    for line in text.splitlines() if live else ():
                        if line.strip():
                            live(printable(line))
                    step = _current_step(text) or step
                if "error" in chunk:
                    error = spec.redact(str(chunk.get("errorDetail", {}).get("message") or chunk["error"]).strip())
                    log.write(f"ERROR: {error}\n")
                image_id = (chunk.get("aux") or {}).get("ID", image_id)
        except APIError as exc:
            error = spec.redact(str(exc.explanation or exc))
            log.write(f"ERROR: {error}\n")
    if error:
        raise _build_error(client, spec, card, step, error, list(tail), log_path)
    return image_id or client.images.get(spec.image).id


def _labels(spec: BuildSpec) -> dict[str, str]:
    return {HASH_LABEL: spec.content_hash, "pytest-madengine.dockerfile": spec.dockerfile_rel}


def _buildkit_context(spec: BuildSpec, directory: Path) -> Path:
    """A tar of the hashed files, the Dockerfile (with the tools stage when needed) and docker/common."""
    text = spec.dockerfile.read_text(errors="replace")
    if spec.tools_dir is not None:
        text = buildkit.with_tools_stage(text)
    dockerfile = directory / _DOCKERFILE_IN_TAR
    dockerfile.write_text(text)
    archive = directory / "context.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:  # the CLI does not take POSIX ustar on stdin
        for rel in spec.files:
            if Path(rel).name != ".dockerignore":  # already applied; BuildKit must not apply it twice
                tar.add(spec.context_dir / rel, arcname=rel, recursive=False)
        for rel in spec.tools_files:
            tar.add(spec.tools_dir / rel, arcname=f"{buildkit.TOOLS_IN_TAR}/{rel}", recursive=False)  # type: ignore[operator]
        tar.add(dockerfile, arcname=_DOCKERFILE_IN_TAR)
    return archive


def build_with_buildkit(client: Any, spec: BuildSpec, *, card: ModelCard, nocache: bool, log_path: Path,
                        live: Callable[[str], None] | None = None) -> str:
    """Build with BuildKit through the docker CLI (argv list, context tar on stdin); the image id."""
    cli = buildkit.default_cli() or buildkit.find_build_cli()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"# image {spec.image} from {spec.dockerfile_rel}, context {spec.context_dir}\n")
        log.write(f"# BuildKit ({spec.buildkit or 'the default builder'}) via {' '.join(cli.argv)}; nocache={nocache}; "
                  f"build args: {', '.join(sorted(spec.build_args)) or 'none'}\n")
        if spec.tools_dir is not None:
            log.write(f"# tools build context = {TOOLS_DISPLAY} (a stage added before the first FROM: "
                      "BuildKit's line numbers are 2 higher than the file's)\n")
    options = ["--network=host", "--progress=plain", "-t", spec.image, "-f", _DOCKERFILE_IN_TAR]
    options += [part for key, value in _labels(spec).items() for part in ("--label", f"{key}={value}")]
    options += [part for key, value in sorted(spec.build_args.items()) for part in ("--build-arg", f"{key}={value}")]
    options += ["--no-cache"] if nocache else []
    with tempfile.TemporaryDirectory(prefix="pytest-madengine-build-") as tmp:
        code, step, tail = buildkit.run_build(cli, options, _buildkit_context(spec, Path(tmp)), log_path,
                                              redact=spec.redact, live=live)
    if code != 0:
        where = f"{card.source}: card {card.name!r}, Dockerfile {spec.dockerfile_rel}"
        if spec.base_docker and spec.base_docker != "scratch" and not _image_exists(client, spec.base_docker):
            raise _build_error(client, spec, card, step, f"docker build exited with {code}", tail, log_path)
        problem, fix = buildkit.failure_problem(spec.image, step, tail, log_path,
                                                spec.dockerfile.read_text(errors="replace"))
        raise MadError(problem, where=where, fix=fix)
    return str(client.images.get(spec.image).id)


def _current_step(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("Step ") and " : " in line:
            return line.strip()
    return ""


def _build_error(client: Any, spec: BuildSpec, card: ModelCard, step: str, error: str,
                 tail: list[str], log_path: Path) -> MadError:
    where = f"{card.source}: card {card.name!r}, Dockerfile {spec.dockerfile_rel}"
    if spec.base_docker and spec.base_docker != "scratch" and not _image_exists(client, spec.base_docker):
        return MadError(
            f"building image {spec.image} failed: base image {spec.base_docker} is not available locally "
            f"and cannot be pulled ({error}). Build log: {log_path}",
            where=where,
            fix=f"build or tag {spec.base_docker} locally (docker tag <local image> {spec.base_docker}), "
                "or pass another base with --mad-context \"{'docker_build_arg': {'BASE_DOCKER': 'IMAGE'}}\"",
        )
    shown = printable("\n".join(tail[-10:]))
    return MadError(
        f"building image {spec.image} failed at {step or 'the first step'}: {error}\n"
        f"Last build output:\n{shown}\nFull build log: {log_path}",
        where=where, fix="fix the failing Dockerfile step (see the build log)",
    )


def _image_exists(client: Any, name: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(name)
    except ImageNotFound:
        return False
    return True
