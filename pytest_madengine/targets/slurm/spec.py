"""The job spec file: everything a node needs to run its part, without pytest state.

SlurmTarget writes it to the shared run dir; ``python -m pytest_madengine.targets.slurm.node SPEC`` reads
it on every node. Card, context, image and a settings subset travel as JSON.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ...cards import ModelCard
from ...fileio import atomic_write_json
from ...records import ImageRef
from ...settings import Settings

VERSION = 1
# Settings a node needs to run its container like the local target would.
_NODE_SETTINGS = ("timeout", "registry", "skip_run", "keep_alive", "keep_model_dir", "gpus",
                  "disable_skip_gpu_arch", "use_image", "no_sys_env")


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


def write_spec(path: Path, spec: dict[str, Any]) -> None:
    atomic_write_json(path, {"version": VERSION, **spec})


def read_spec(path: Path) -> dict[str, Any]:
    spec = json.loads(path.read_text())
    if spec.get("version") != VERSION:
        raise ValueError(f"{path}: job spec version {spec.get('version')} is not {VERSION}")
    return spec


def image_from_json(data: dict[str, Any]) -> ImageRef:
    return ImageRef(**data)
