"""A ``CustomModel`` compatible with madengine's, for dynamic ``get_models_json.py`` scripts.

madengine's class is a plain dataclass whose ``update_model()`` is a hook that subclasses
override. This one also accepts keywords madengine's constructor would reject (``env_vars``,
``distributed``, ...) and keeps them, so ``to_dict()`` returns the whole card.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(init=False)
class CustomModel:
    """A model card built in Python. Field defaults follow madengine."""

    name: str = ""
    dockerfile: str = ""
    dockercontext: str = ""
    scripts: str = ""
    url: str = ""
    cred: str = ""
    owner: str = ""
    data: str = ""
    n_gpus: str = "-1"
    timeout: int = 7200
    training_precision: str = ""
    tags: list[str] = field(default_factory=list)
    args: str = ""
    multiple_results: str = ""
    skip_gpu_arch: str = ""

    def __init__(self, name: str = "", dockerfile: str = "", dockercontext: str = "",
                 scripts: str = "", url: str = "", cred: str = "", owner: str = "", data: str = "",
                 n_gpus: str = "-1", timeout: int = 7200, training_precision: str = "",
                 tags: list[str] | None = None, args: str = "", multiple_results: str = "",
                 skip_gpu_arch: str = "", **extra: Any) -> None:
        self.name = name
        self.dockerfile = dockerfile
        self.dockercontext = dockercontext
        self.scripts = scripts
        self.url = url
        self.cred = cred
        self.owner = owner
        self.data = data
        self.n_gpus = n_gpus
        self.timeout = timeout
        self.training_precision = training_precision
        self.tags = list(tags) if tags is not None else []
        self.args = args
        self.multiple_results = multiple_results
        self.skip_gpu_arch = skip_gpu_arch
        for key, value in extra.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """Every field plus every extra public attribute, deep-copied into a plain dict."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key, value in vars(self).items():
            if not key.startswith("_") and key not in data:
                data[key] = value
        return copy.deepcopy(data)

    def update_model(self, *updates: dict[str, Any], **changes: Any) -> None:
        """madengine's hook (no arguments: nothing to do; subclasses override it).

        Also accepts dicts and/or keywords whose items are set as attributes.
        """
        for update in updates:
            changes = {**update, **changes}
        for key, value in changes.items():
            setattr(self, key, value)
