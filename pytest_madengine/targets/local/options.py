"""Docker SDK keyword arguments for one model run: GPUs, environment, mounts, card options.

Everything here is pure (no engine calls) so it is unit-tested on the produced kwargs.
GPU visibility: a container only sees the devices it was given (AMD: /dev/kfd + the allocated
renderD nodes; NVIDIA: a device request), and the runtimes number visible devices from 0, so
HIP/ROCR/CUDA_VISIBLE_DEVICES are ``0..n-1`` there. With vendor NONE and a declared pool the
allocated ids are exported as given, so scheduling stays observable; ``MAD_ALLOCATED_GPUS``
always holds the host ids.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from ...cards import ModelCard
from ...errors import MadError, WarnOnce
from ...workload.environment import mad_environment

# Applied for every vendor: what MAD models expect from madengine's `docker run` (perf counters and
# profilers need SYS_PTRACE/SYS_ADMIN and no seccomp/AppArmor confinement; fuse mounts need /dev/fuse,
# passed where the host has it: ``host_device_options``; ``-u root`` whatever the image's USER, which a
# card's own ``-u``/``--user`` replaces, as it comes later on madengine's command line).
COMMON_OPTIONS: dict[str, Any] = {
    "user": "root",
    "network_mode": "host",
    "ipc_mode": "host",
    "cap_add": ["SYS_PTRACE", "SYS_ADMIN"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
}
HOST_DEVICES = ("/dev/fuse",)
LIST_KEYS = ("cap_add", "cap_drop", "devices", "security_opt", "group_add", "volumes", "ulimits",
             "device_requests", "tmpfs_list", "dns")
_IGNORED_FLAGS = {"--rm", "-i", "-t", "-it", "-ti", "--interactive", "--tty", "-d", "--detach"}
_REFUSED = {
    "--entrypoint": "the model's script is the command; put setup into the Dockerfile or a pre_script",
    "--name": "containers are named by pytest-madengine (one per run)",
    "--gpus": "GPUs are allocated by pytest-madengine: use --mad-gpus and the card's n_gpus",
    "-w": "the working directory is the model directory",
    "--workdir": "the working directory is the model directory",
}


def _env(kwargs: dict[str, Any], value: str) -> None:
    key, sep, val = value.partition("=")
    if sep:
        kwargs.setdefault("environment", {})[key] = val
    elif key in os.environ:  # `-e NAME` takes the value from the caller's environment, as docker does
        kwargs.setdefault("environment", {})[key] = os.environ[key]


def _ulimit(kwargs: dict[str, Any], value: str) -> None:
    from docker.types import Ulimit

    name, _, limits = value.partition("=")
    soft, _, hard = limits.partition(":")
    kwargs.setdefault("ulimits", []).append(Ulimit(name=name, soft=int(soft), hard=int(hard or soft)))


def _add_host(kwargs: dict[str, Any], value: str) -> None:
    host, _, address = value.partition(":")
    kwargs.setdefault("extra_hosts", {})[host] = address


def _tmpfs(kwargs: dict[str, Any], value: str) -> None:
    path, _, opts = value.partition(":")
    kwargs.setdefault("tmpfs", {})[path] = opts


def _cpus(kwargs: dict[str, Any], value: str) -> None:
    kwargs["nano_cpus"] = int(float(value) * 1e9)


def _setter(key: str) -> Callable[[dict[str, Any], str], None]:
    def apply(kwargs: dict[str, Any], value: str) -> None:
        kwargs[key] = value
    return apply


def _appender(key: str) -> Callable[[dict[str, Any], str], None]:
    def apply(kwargs: dict[str, Any], value: str) -> None:
        kwargs.setdefault(key, []).append(value)
    return apply


# flag → how its value lands in the SDK kwargs
_VALUE_FLAGS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "-e": _env, "--env": _env,
    "-v": _appender("volumes"), "--volume": _appender("volumes"),
    "--shm-size": _setter("shm_size"),
    "--ipc": _setter("ipc_mode"),
    "--network": _setter("network_mode"), "--net": _setter("network_mode"),
    "--pid": _setter("pid_mode"),
    "--cap-add": _appender("cap_add"), "--cap-drop": _appender("cap_drop"),
    "--device": _appender("devices"),
    "--security-opt": _appender("security_opt"),
    "--ulimit": _ulimit,
    "--group-add": _appender("group_add"),
    "-u": _setter("user"), "--user": _setter("user"),
    "-m": _setter("mem_limit"), "--memory": _setter("mem_limit"),
    "--cpus": _cpus, "--cpuset-cpus": _setter("cpuset_cpus"),
    "--hostname": _setter("hostname"), "-h": _setter("hostname"),
    "--add-host": _add_host, "--tmpfs": _tmpfs, "--dns": _appender("dns"),
}
_BOOL_FLAGS = {"--privileged": "privileged", "--init": "init"}


def parse_run_options(text: str, *, where: str) -> dict[str, Any]:
    """A card's ``additional_docker_run_options`` string → Docker SDK ``containers.create`` kwargs."""
    try:
        tokens = shlex.split(text or "")
    except ValueError as exc:
        raise MadError(f"additional_docker_run_options cannot be split ({exc})", where=where,
                       fix="balance the quotes in additional_docker_run_options") from None
    kwargs: dict[str, Any] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        flag, has_inline, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        index += 1
        if flag in _IGNORED_FLAGS:
            continue
        if flag in _REFUSED:
            raise MadError(f"additional_docker_run_options: {flag} is not allowed", where=where,
                           fix=_REFUSED[flag])
        if flag in _BOOL_FLAGS:
            kwargs[_BOOL_FLAGS[flag]] = inline.lower() not in ("false", "0") if has_inline else True
            continue
        if flag not in _VALUE_FLAGS:
            raise MadError(f"additional_docker_run_options: unsupported option {token!r}", where=where,
                           fix=f"use only {', '.join(sorted({*_VALUE_FLAGS, *_BOOL_FLAGS}))}, or adjust "
                               "the options in a conftest.py pytest_madengine_docker_run_options hook")
        if not has_inline:
            if index >= len(tokens):
                raise MadError(f"additional_docker_run_options: {flag} needs a value", where=where,
                               fix=f"write {flag} VALUE")
            inline = tokens[index]
            index += 1
        try:
            _VALUE_FLAGS[flag](kwargs, inline)
        except ValueError:
            raise MadError(f"additional_docker_run_options: bad value {inline!r} for {flag}", where=where,
                           fix=f"see `docker run --help` for the form of {flag}") from None
    return kwargs


def merge_options(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: lists extend (no duplicates), dicts update, scalars replace."""
    merged: dict[str, Any] = {key: (list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict)
                    else value) for key, value in base.items()}
    for key, value in extra.items():
        if isinstance(value, list):
            current = merged.setdefault(key, [])
            current.extend(item for item in value if item not in current)
        elif isinstance(value, dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    return merged


def neutral_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``pytest_madengine_container_options`` values in this target's shapes: ``volumes`` given as
    the SDK's ``{host: {"bind": path, "mode": m}}`` become its ``"host:path:m"`` list form."""
    shaped = dict(options)
    volumes = shaped.get("volumes")
    if isinstance(volumes, Mapping):
        shaped["volumes"] = [f"{host}:{spec['bind']}:{spec.get('mode', 'rw')}" if isinstance(spec, Mapping)
                             else f"{host}:{spec}" for host, spec in volumes.items()]
    return shaped


def render_device(render_devices: Any, gpu: int) -> str:
    """``/dev/dri/renderD<N>`` for a GPU id (host facts map id → render minor; else 128 + id)."""
    try:
        value = render_devices[gpu] if render_devices is not None else None
    except (KeyError, IndexError, TypeError):
        value = None
    if value is None:
        value = 128 + gpu
    text = str(value)
    if text.startswith("/dev/"):
        return text
    return f"/dev/dri/{text}" if text.startswith("renderD") else f"/dev/dri/renderD{int(text)}"


def gpu_options(vendor: str, gpus: tuple[int, ...], *, render_devices: Any = None) -> dict[str, Any]:
    """Device flags per vendor; none for vendor NONE or an empty allocation."""
    vendor = (vendor or "NONE").upper()
    if not gpus or vendor not in ("AMD", "NVIDIA"):
        return {}
    if vendor == "AMD":
        devices = ["/dev/kfd"] + [render_device(render_devices, gpu) for gpu in gpus]
        return {"devices": [f"{path}:{path}:rwm" for path in devices], "group_add": ["video"]}
    from docker.types import DeviceRequest

    return {"device_requests": [DeviceRequest(device_ids=[str(gpu) for gpu in gpus], capabilities=[["gpu"]])],
            "cap_add": ["SYS_NICE"]}


def host_device_options(exists: Callable[[str], bool] = os.path.exists) -> dict[str, Any]:
    """madengine's extra devices (``/dev/fuse``) that this host has; a missing one is left out, since
    Docker refuses to create a container with a device the host lacks."""
    devices = [f"{path}:{path}:rwm" for path in HOST_DEVICES if exists(path)]
    return {"devices": devices} if devices else {}


def mount_volumes(mounts: Mapping[str, str] | None) -> list[str]:
    """Context ``docker_mounts`` ({container_path: host_path}) → SDK volume strings."""
    return [f"{host}:{container}:rw" for container, host in (mounts or {}).items()]


class MountWarning(UserWarning):
    """A context ``docker_mounts`` entry left out because the card mounts the same container path."""


_warned_mounts = WarnOnce()


def container_path(volume: str) -> str:
    """The container side of a ``-v`` / SDK volume string (``host:container[:mode]`` or ``container``)."""
    parts = volume.split(":")
    return (parts[1] if len(parts) > 1 else parts[0]).rstrip("/") or "/"


def context_volumes(mounts: Mapping[str, str] | None, card_volumes: list[str], *, where: str) -> list[str]:
    """The context's ``docker_mounts`` as volumes, less those on a container path the card's own ``-v``
    mounts: the card wins (Docker refuses two mounts on one path), said once per card and path."""
    taken = {container_path(volume) for volume in card_volumes}
    kept = []
    for volume in mount_volumes(mounts):
        path = container_path(volume)
        if path not in taken:
            kept.append(volume)
        else:
            _warned_mounts.warn((where, path), MountWarning(
                f"{where}: its additional_docker_run_options mount {path}, which the context's docker_mounts "
                f"also mounts; the card's mount is used. Fix: drop {path!r} from docker_mounts, or the -v "
                "from the card, to silence this"), stacklevel=2)
    return kept


def assemble_options(card: ModelCard, context: Any, gpus: tuple[int, ...], *, no_gpus: bool = False,
                     host_env: Mapping[str, str] | None = None,
                     image_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """All SDK kwargs that come from the card, the context and the GPU allocation.

    ``no_gpus`` (``--mad-gpus none``) drops every device flag whatever the vendor. Device flags
    follow the GPUs the host really has: a context that says AMD on a host where detection found
    none (a declared pool on CPU CI) chooses Dockerfiles and env, never ``/dev/kfd``.
    """
    gpus = () if no_gpus else tuple(gpus)
    host = getattr(context, "host", None)
    vendor = "NONE" if no_gpus else str(getattr(context, "gpu_vendor", "") or "NONE")
    if getattr(host, "gpu_vendor", None) == "NONE":
        vendor = "NONE"
    devices = gpu_options(vendor, gpus, render_devices=getattr(host, "render_devices", None))
    options = merge_options(merge_options(COMMON_OPTIONS, host_device_options()), devices)
    card_options = parse_run_options(card.additional_docker_run_options,
                                     where=f"{card.source}: card {card.name!r}")
    volumes = context_volumes(getattr(context, "docker_mounts", None), card_options.get("volumes") or [],
                              where=f"{card.source}: card {card.name!r}")
    if volumes:
        options = merge_options(options, {"volumes": volumes})
    cpus = (getattr(context, "data", None) or {}).get("docker_cpus")
    if cpus:
        options["cpuset_cpus"] = str(cpus)
    card_env = card_options.pop("environment", {})
    options = merge_options(options, card_options)
    env = mad_environment(card, context, gpus, devices_passed=bool(devices), host_env=host_env,
                          image_env=image_env)
    context_env = {str(k): str(v) for k, v in (getattr(context, "docker_env_vars", None) or {}).items()}
    options["environment"] = {**env, **card_env, **context_env}  # the user's context wins
    return options
