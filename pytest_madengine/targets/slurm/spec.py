"""The job spec file: everything a node needs to run its part, without pytest state.

SlurmTarget writes a :class:`JobSpec` to the shared run dir; ``python -m pytest_madengine.targets.slurm.node
SPEC`` reads it on every node. Card, context, image and a settings subset travel as JSON.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...cards import ModelCard
from ...fileio import atomic_write_json
from ...records import ImageRef
from ...settings import Settings
from ...workload.secrets import merge_secrets, secret_env, split_secrets

VERSION = 1
SECRETS_NAME = "secrets.json"
SECRET_BEARING = ("card", "context", "container_options")  # spec keys whose secret entries go to SECRETS_NAME
# Settings a node needs to run its container like the local target would.
_NODE_SETTINGS = ("timeout", "registry", "skip_run", "keep_alive", "keep_model_dir", "gpus",
                  "disable_skip_gpu_arch", "use_image", "no_sys_env", "data_config", "tools_config",
                  "force_mirror_local")


def card_to_json(card: ModelCard) -> dict[str, Any]:
    return {f.name: getattr(card, f.name) for f in dataclasses.fields(card)}


def card_from_json(data: dict[str, Any]) -> ModelCard:
    values = dict(data)
    for name in ("tags", "skip_gpu_arch"):
        values[name] = tuple(values.get(name) or ())
    values["params"] = tuple(tuple(pair) for pair in values.get("params") or ())
    return ModelCard(**values)


def settings_to_json(settings: Any, *, node_timeout: int | None) -> dict[str, Any]:
    values = {name: getattr(settings, name, None) for name in _NODE_SETTINGS}
    values["timeout"] = node_timeout or 0
    return values


def settings_from_json(data: dict[str, Any], package: Path) -> Settings:
    return Settings(package=package, **{k: v for k, v in data.items() if k in _NODE_SETTINGS})


@dataclass(frozen=True)
class JobSpec:
    """What every node of one SLURM job reads (``spec.json``, mode 0600, format ``VERSION``).

    ``card``, ``context``, ``image``, ``settings`` and ``container_options`` are JSON objects
    (:func:`card_to_json`, the context's data, ``ImageRef.to_json``, :func:`settings_to_json`);
    their secret-keyed entries travel in ``secrets.json`` beside the spec (:func:`write_spec`).
    """

    session_id: str
    run_id: str
    model: str
    card: dict[str, Any]
    context: dict[str, Any]
    image: dict[str, Any]
    settings: dict[str, Any]
    package_root: str
    run_dir: str
    image_cache_dir: str
    launcher: str  # the launcher family's name (workload.launchers)
    nnodes: int
    nproc_per_node: int
    gpus_per_node: int
    master_port: int | None  # None: the job script derives one per job
    image_distribution: str  # slurm.image_distribution
    barrier_timeout: float  # seconds a node waits for the others at a barrier
    job_env: dict[str, str] = field(default_factory=dict)  # slurm.network_interface, env_vars
    node_check: dict[str, Any] | None = None  # nodecheck_retry.node_settings, or None
    container_options: dict[str, Any] = field(default_factory=dict)  # pytest_madengine_container_options

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "job spec") -> JobSpec:
        """Raises ValueError naming ``where`` for another version or a missing field."""
        if data.get("version") != VERSION:
            raise ValueError(f"{where}: job spec version {data.get('version')} is not {VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ValueError(f"{where}: job spec lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})


def secrets_path(spec_path: Path) -> Path:
    return spec_path.with_name(SECRETS_NAME)


def write_spec(path: Path, job: JobSpec, host_env: Mapping[str, str] | None = None) -> None:
    """The spec without secrets (0600), and beside it ``secrets.json`` (0600) with the secret-keyed
    card and context values and the host's secret variables (``MAD_SECRETS_*``), when there are any.
    The controller removes ``secrets.json`` when the job is over (:func:`remove_secrets`)."""
    spec = job.to_json()
    public, secret = dict(spec), {}
    for key in SECRET_BEARING:
        public[key], hidden = split_secrets(spec.get(key))
        if hidden:
            secret[key] = hidden
    env = secret_env(os.environ if host_env is None else host_env)
    if env:
        secret["env"] = env
    if secret:
        atomic_write_json(secrets_path(path), secret, mode=0o600)
    atomic_write_json(path, public, mode=0o600)


def read_spec(path: Path) -> JobSpec:
    """The spec with its secrets merged back (the node process gets the host's secret variables).
    Raises ValueError for another version or a missing field."""
    spec = json.loads(path.read_text())
    hidden_path = secrets_path(path)
    if hidden_path.is_file():
        hidden = json.loads(hidden_path.read_text())
        for key in SECRET_BEARING:
            spec[key] = merge_secrets(spec.get(key), hidden.get(key) or {})
        os.environ.update({str(k): str(v) for k, v in (hidden.get("env") or {}).items()})
    return JobSpec.from_json(spec, where=str(path))


def spec_session(path: Path) -> str:
    """The session id a spec file was written by; '' when it cannot be read."""
    try:
        return str(json.loads(path.read_text()).get("session_id") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def remove_secrets(spec_path: Path) -> None:
    secrets_path(spec_path).unlink(missing_ok=True)


def image_from_json(data: dict[str, Any]) -> ImageRef:
    return ImageRef(**data)
