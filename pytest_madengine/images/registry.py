"""Registry credentials (credential.json + environment), login, push and pull via the Docker SDK.

Credentials, in order of precedence:

1. For Docker Hub (registry ``docker.io``, ``dockerhub``, or none): ``MAD_DOCKERHUB_USER`` +
   ``MAD_DOCKERHUB_PASSWORD`` (and ``MAD_DOCKERHUB_REPO``) override credential.json, as in
   madengine.
2. ``credential.json`` at the package root, keyed like madengine's: ``"dockerhub"`` for Docker Hub,
   otherwise the registry as given (``"localhost:5000/team"``) or its host (``"localhost:5000"``).
   Values are objects with ``username`` and ``password`` (``repository`` optional).
3. For any other registry without an entry: the ``MAD_DOCKERHUB_*`` variables as a fallback.

Without credentials the Docker SDK still uses the user's own ``docker login`` (~/.docker/config.json).
No password ever appears in an error text: every message is scrubbed before it is raised.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MadError
from ..jsonfile import read_json, require_object

CREDENTIAL_FILE = "credential.json"
DOCKERHUB = "dockerhub"
DOCKERHUB_HOSTS = ("", "docker.io", "dockerhub", "index.docker.io", "registry-1.docker.io")
ENV_USER, ENV_PASSWORD, ENV_REPO = "MAD_DOCKERHUB_USER", "MAD_DOCKERHUB_PASSWORD", "MAD_DOCKERHUB_REPO"
_AUTH_FAILURE = re.compile(r"unauthori[sz]ed|authentication required|no basic auth|denied|401", re.IGNORECASE)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    registry: str  # the credential key they came from: "dockerhub" or a host like "localhost:5000"
    repository: str = ""  # madengine's optional "repository" (or MAD_DOCKERHUB_REPO)
    origin: str = ""  # "credential.json key 'X'" or the env vars, for messages

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


# ---- registry names ------------------------------------------------------------------------------

def split_registry(registry: str | None) -> tuple[str, str]:
    """``"http://localhost:5000/team/"`` → ``("localhost:5000", "team")``; Docker Hub host → ``""``."""
    text = re.sub(r"^[a-z]+://", "", (registry or "").strip()).strip("/")
    host, _, namespace = text.partition("/")
    if host.lower() in DOCKERHUB_HOSTS:
        host = ""
    return host, namespace


_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$")
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def check_registry(registry: str) -> None:
    """Refuse a ``--mad-registry`` that is no ``[scheme://]host[:port][/namespace]`` (MadError)."""
    text = registry.strip()
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    _, namespace = split_registry(text)
    raw_host = re.sub(r"^[a-z]+://", "", text).strip("/").partition("/")[0]
    if (scheme and scheme.group(1).lower() not in ("http", "https")) or not _HOST.match(raw_host) \
            or (namespace and not _PATH.match(namespace)):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise MadError(f"{shown!r} is not a registry address", where="--mad-registry",
                       fix="give host[:port][/namespace], e.g. localhost:5000 or docker.io/myorg "
                           "(lowercase namespace, no spaces)")


def credential_key(registry: str | None) -> str:
    """The credential.json key for a registry: ``dockerhub`` or the registry host."""
    host, _ = split_registry(registry)
    return host or DOCKERHUB


def registry_of_image(image_ref: str) -> str:
    """The registry host an image reference points at ('' for Docker Hub)."""
    first, sep, _ = image_ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return "" if first.lower() in DOCKERHUB_HOSTS else first
    return ""


def split_image(image_ref: str) -> tuple[str, str]:
    """``"host:5000/a/b:tag"`` → ``("host:5000/a/b", "tag")``; no tag → ``"latest"``."""
    name, _, digest = image_ref.partition("@")
    if digest:
        return name, "@" + digest
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "latest"


def registry_image_name(local_name: str, registry: str, repository: str = "") -> str:
    """Where a local image goes in ``registry``, following madengine's naming.

    With a repository (the ``repo`` argument, credential.json ``repository`` or MAD_DOCKERHUB_REPO) the image
    becomes a tag of it: ``<registry>/<repository>:<local name>``; otherwise
    ``<registry>[/<namespace>]/<local name>:<tag>``.
    """
    host, namespace = split_registry(registry)
    name, tag = split_image(local_name)
    name = name.rsplit("/", 1)[-1].lower()
    prefix = "/".join(part for part in (host, namespace) if part)
    if repository:
        as_tag = name if tag == "latest" else f"{name}-{tag}"
        repo = repository if "/" in repository and registry_of_image(repository) else \
            "/".join(part for part in (prefix, repository) if part)
        return f"{repo}:{as_tag[:128]}"
    if not host and not namespace:
        raise MadError(
            f"cannot push {local_name!r} to Docker Hub without a repository",
            where=f"--mad-registry {registry or 'docker.io'}",
            fix=f"set {ENV_REPO} (e.g. myorg/mad-images), add \"repository\" to the \"dockerhub\" entry of "
                f"{CREDENTIAL_FILE}, or give --mad-registry docker.io/<your-namespace>",
        )
    return f"{prefix}/{name}:{tag}"


# ---- credentials ---------------------------------------------------------------------------------

def _read_credential_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = read_json(path, fix="fix the JSON syntax; entries look like "
                               '{"localhost:5000": {"username": "...", "password": "..."}}')
    require_object(data, "the file", where=str(path), verb="holds",
                   fix='use {"<registry host or dockerhub>": {"username": "...", "password": "..."}}')
    return data


def _from_entry(entry: Any, key: str, path: Path) -> Credentials:
    where = f"{path}: key {key!r}"
    require_object(entry, "the entry", where=where,
                   fix='use {"username": "...", "password": "..."}')
    missing = [name for name in ("username", "password") if not str(entry.get(name) or "").strip()]
    if missing:
        raise MadError(f"missing {' and '.join(missing)}", where=where,
                       fix=f"add {', '.join(repr(m) for m in missing)} to the entry")
    return Credentials(username=str(entry["username"]), password=str(entry["password"]),
                       registry=key, repository=str(entry.get("repository") or ""),
                       origin=f"{CREDENTIAL_FILE} key {key!r}")


def _from_env(env: Mapping[str, str], key: str) -> Credentials | None:
    user, password = env.get(ENV_USER, ""), env.get(ENV_PASSWORD, "")
    if not (user and password):
        return None
    return Credentials(username=user, password=password, registry=key,
                       repository=env.get(ENV_REPO, ""), origin=f"{ENV_USER}/{ENV_PASSWORD}")


def find_credentials(registry: str, package_root: Path, env: Mapping[str, str]) -> Credentials | None:
    """Credentials for ``registry`` from the environment and ``<package_root>/credential.json``."""
    key = credential_key(registry)
    path = Path(package_root) / CREDENTIAL_FILE
    if key == DOCKERHUB and (creds := _from_env(env, key)):
        return creds
    data = _read_credential_file(path)
    full = re.sub(r"^[a-z]+://", "", (registry or "").strip()).strip("/")
    for candidate in dict.fromkeys((full, key)):
        if candidate and candidate in data:
            creds = _from_entry(data[candidate], candidate, path)
            if key == DOCKERHUB and not creds.repository and env.get(ENV_REPO):
                creds = Credentials(creds.username, creds.password, creds.registry,
                                    env[ENV_REPO], creds.origin)
            return creds
    return _from_env(env, key)


def missing_credentials_fix(registry: str) -> str:
    key = credential_key(registry)
    return (f'add {{"{key}": {{"username": "...", "password": "..."}}}} to {CREDENTIAL_FILE} at the '
            f"package root, or set {ENV_USER} and {ENV_PASSWORD}")


# ---- messages without secrets --------------------------------------------------------------------

def scrub(text: str, creds: Credentials | None) -> str:
    """``text`` with the password (if any) replaced: Docker errors must never carry it on."""
    if creds and creds.password:
        text = text.replace(creds.password, "***")
    return text


def _docker_reason(exc: Exception) -> str:
    reason = getattr(exc, "explanation", None) or str(exc)
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason).strip()


def _auth_error(action: str, registry: str, reason: str, creds: Credentials | None) -> MadError:
    where = f"registry {registry or 'docker.io'}"
    if creds is None:
        return MadError(f"{action} needs credentials and none were found ({reason})", where=where,
                        fix=missing_credentials_fix(registry))
    return MadError(
        f"{action} was refused for user {creds.username!r} from {creds.origin} ({scrub(reason, creds)})",
        where=where, fix=f"check the username and password in {creds.origin}")


# ---- Docker SDK operations -----------------------------------------------------------------------

def login(client: Any, creds: Credentials) -> None:
    """Log the SDK client in (reauth, so a cached login never hides a wrong password)."""
    import docker.errors

    host = "" if creds.registry == DOCKERHUB else split_registry(creds.registry)[0]
    try:
        client.login(username=creds.username, password=creds.password, registry=host or None, reauth=True)
    except docker.errors.APIError as exc:
        reason = _docker_reason(exc)
        if _AUTH_FAILURE.search(reason):
            raise _auth_error("login", host, reason, creds) from None
        raise MadError(f"login failed: {scrub(reason, creds)}", where=f"registry {host or 'docker.io'}",
                       fix="check that the registry is running and reachable") from None


def _stream_errors(chunks: Iterable[dict[str, Any]]) -> str:
    """The first error a push/pull progress stream reports ('' when none)."""
    for chunk in chunks:
        if isinstance(chunk, dict) and (chunk.get("error") or chunk.get("errorDetail")):
            detail = chunk.get("errorDetail") or {}
            return str(chunk.get("error") or detail.get("message") or detail)
    return ""


def push_image(client: Any, local_name: str, registry: str, package_root: Path, *,
               repo: str | None = None, target: str | None = None) -> str:
    """Tag ``local_name`` for ``registry`` and push it; return the registry image reference.

    ``target`` (a batch manifest's ``registry_image``) names the destination exactly; otherwise
    :func:`registry_image_name` decides it with ``repo`` or the credentials' repository. A ``repo``
    with an explicit tag (``host/team/name:v1``) is taken as ``target``.
    """
    import docker.errors

    if target is None and repo and ("@" in repo or ":" in repo.rsplit("/", 1)[-1]):
        target, repo = repo, None
    creds = find_credentials(registry, Path(package_root), os.environ)
    reference = target or registry_image_name(local_name, registry, repo or (creds.repository if creds else ""))
    repository, tag = split_image(reference)
    where = f"push of {local_name} to {reference}"
    try:
        image = client.images.get(local_name)
    except docker.errors.ImageNotFound:
        raise MadError("the image to push does not exist locally", where=where,
                       fix="build it first (the build step must succeed before the push)") from None
    if creds:
        login(client, creds)
    try:
        image.tag(repository, tag)
        chunks = client.api.push(repository, tag=tag, stream=True, decode=True,
                                 auth_config=creds.auth_config() if creds else None)
        error = _stream_errors(chunks)
    except docker.errors.APIError as exc:
        error = _docker_reason(exc)
    if not error:
        return reference
    if _AUTH_FAILURE.search(error):
        raise _auth_error(f"push of {reference}", registry, error, creds)
    raise MadError(f"push failed: {scrub(error, creds)}", where=where,
                   fix="check that the registry is running, reachable and accepts this name")


def image_exists(client: Any, image_ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(image_ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_local_image(client: Any, image_ref: str, registry: str | None, package_root: Path) -> str:
    """Return ``image_ref`` once it is in the local engine, pulling it with credentials if needed.

    Credentials are looked up for the registry named in ``image_ref`` itself (the engine pulls
    from there); ``registry`` (the session's --mad-registry) only names a Docker Hub namespace in
    messages when the reference has no host.
    """
    import docker.errors

    if image_exists(client, image_ref):
        return image_ref
    source = registry_of_image(image_ref) or (registry if registry and not split_registry(registry)[0] else "")
    creds = find_credentials(source, Path(package_root), os.environ)
    try:
        # The SDK splits tag or digest off the reference itself (no tag → latest).
        chunks = client.api.pull(image_ref, stream=True, decode=True,
                                 auth_config=creds.auth_config() if creds else None)
        error = _stream_errors(chunks)
    except docker.errors.APIError as exc:
        error = _docker_reason(exc)
    if not error and image_exists(client, image_ref):
        return image_ref
    error = error or "the pull finished but the image is still missing"
    if _AUTH_FAILURE.search(error):
        raise _auth_error(f"pull of {image_ref}", source, error, creds)
    raise MadError(f"image {image_ref!r} is not local and not pullable from {source or 'docker.io'}: "
                   f"{scrub(error, creds)}",
                   fix="build it here, push it to the registry first, or fix the image name")
