"""The run context: detected host facts, overlaid by --mad-context-file, then --mad-context.

User text is parsed as JSON, else as a Python literal with ``ast.literal_eval`` — never eval'd.
"""
from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MadError
from .host import VENDORS, HostFacts, detect_host, normalise_product, parse_gpu_list
from .jsonfile import read_json

MAX_CONTEXT_CHARS = 64 * 1024
DEFAULT_GUEST_OS = "UBUNTU"  # madengine's default guest OS
EXAMPLE = "--mad-context \"{'gpu_vendor': 'AMD', 'guest_os': 'UBUNTU'}\""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARSE_FAILURES = (SyntaxError, ValueError, TypeError, MemoryError, RecursionError, OverflowError)


def _snippet(text: str, offset: int) -> str:
    start = max(0, offset - 15)
    return text[start:offset + 15].replace("\n", " ")


def _error_detail(text: str, json_error: json.JSONDecodeError | None, py_error: Exception) -> str:
    """Say what went wrong in the syntax the user evidently meant (quotes ' → Python, else JSON)."""
    if isinstance(py_error, (RecursionError, MemoryError)):
        return "it is nested too deeply"
    if json_error is not None and "'" not in text:
        return (f"{json_error.msg} at line {json_error.lineno} column {json_error.colno} "
                f"(near {_snippet(text, json_error.pos)!r})")
    if isinstance(py_error, SyntaxError) and py_error.lineno:
        lines = text.split("\n")
        offset = sum(len(line) + 1 for line in lines[:py_error.lineno - 1]) + (py_error.offset or 1) - 1
        return (f"{py_error.msg} at line {py_error.lineno} column {py_error.offset} "
                f"(near {_snippet(text, offset)!r})")
    return "only literal values are allowed (no names, operators or calls)"


def _not_a_literal(text: str, json_error: json.JSONDecodeError | None, py_error: Exception,
                   where: str) -> MadError:
    detail = _error_detail(text, json_error, py_error)
    return MadError(f"the context is neither JSON nor a Python dict literal: {detail}", where=where,
                    fix=f"give one object with quoted keys as a single shell argument, e.g. {EXAMPLE}")


def _jsonable(value: Any, path: str, where: str) -> Any:
    """Tuples become lists; sets, bytes, complex numbers and non-string keys are refused."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise MadError(f"key {key!r} in {path} is not a string", where=where,
                               fix="quote every key, e.g. {'docker_env_vars': {'NCCL_DEBUG': 'INFO'}}")
            out[key] = _jsonable(item, f"{path}.{key}", where)
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{path}[{i}]", where) for i, item in enumerate(value)]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise MadError(f"{path} is a {type(value).__name__}, which JSON cannot hold", where=where,
                   fix="use strings, numbers, booleans, lists and dicts only")


def _as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MadError(f"the context is a {type(value).__name__}, not a dict", where=where,
                       fix=f"wrap the settings in braces, e.g. {EXAMPLE}")
    try:
        return _jsonable(value, "context", where)
    except RecursionError:
        raise MadError("the context is nested too deeply", where=where,
                       fix="keep the context a few levels deep") from None


def parse_context_string(text: str, where: str = "--mad-context") -> dict[str, Any]:
    """A context given on the command line: JSON first, then a Python dict literal."""
    text = str(text or "").strip()
    if not text:
        return {}
    if len(text) > MAX_CONTEXT_CHARS:
        raise MadError(f"the context is {len(text)} characters long (the limit is {MAX_CONTEXT_CHARS})",
                       where=where, fix="put a large context in a JSON file and pass --mad-context-file")
    json_error = None
    try:
        return _as_dict(json.loads(text), where)
    except json.JSONDecodeError as error:
        json_error = error
    except (ValueError, RecursionError):
        pass
    try:
        value = ast.literal_eval(text)
    except _PARSE_FAILURES as error:
        raise _not_a_literal(text, json_error, error, where) from None
    return _as_dict(value, where)


def load_context_file(path: str | Path) -> dict[str, Any]:
    """A context file: one JSON object."""
    where = f"--mad-context-file {path}"
    value = read_json(path, where=where, fix='write one JSON object, e.g. {"gpu_vendor": "AMD"}')
    return _as_dict(value, where)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` wins; where both hold a dict the two are merged key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def host_context(host: HostFacts) -> dict[str, Any]:
    """The context madengine derives from the machine before any user input."""
    return {
        "gpu_vendor": host.gpu_vendor,
        "guest_os": DEFAULT_GUEST_OS,
        "host_os": host.host_os,
        "gpu_architecture": host.gpu_architecture,
        "gpu_product": host.gpu_product,
        "n_system_gpus": host.gpu_count,
        "rocm_path": host.rocm_path,
        "machine_name": host.machine_name,
        "docker_env_vars": {
            "MAD_GPU_VENDOR": host.gpu_vendor,
            "MAD_SYSTEM_NGPUS": str(host.gpu_count),
            "MAD_SYSTEM_GPU_ARCHITECTURE": host.gpu_architecture,
            "MAD_SYSTEM_GPU_PRODUCT_NAME": host.gpu_product,
            "MAD_SYSTEM_HIP_VERSION": host.hip_version,
        },
        "docker_build_arg": {"MAD_SYSTEM_GPU_ARCHITECTURE": host.gpu_architecture},
    }


def _flow_user_overrides(data: dict[str, Any], user: Mapping[str, Any]) -> None:
    """A user-given vendor/arch/GPU count reaches the env vars and build args too, unless the
    user set those explicitly as well."""
    user_env = user.get("docker_env_vars") or {}
    user_args = user.get("docker_build_arg") or {}
    flows = (("gpu_vendor", "MAD_GPU_VENDOR", False),
             ("gpu_architecture", "MAD_SYSTEM_GPU_ARCHITECTURE", True),
             ("n_system_gpus", "MAD_SYSTEM_NGPUS", False),
             ("gpu_product", "MAD_SYSTEM_GPU_PRODUCT_NAME", False))
    for key, variable, is_build_arg in flows:
        if key not in user:
            continue
        if variable not in user_env:
            data["docker_env_vars"][variable] = str(data[key])
        if is_build_arg and variable not in user_args:
            data["docker_build_arg"][variable] = str(data[key])


def _str_map(data: dict[str, Any], key: str, where: str) -> None:
    value = data.get(key)
    if value is None:
        data[key] = {}
        return
    if not isinstance(value, dict):
        raise MadError(f"context key {key!r} is a {type(value).__name__}, not a dict", where=where,
                       fix=f"give it as {{'NAME': 'value'}}, e.g. {{'{key}': {{'NCCL_DEBUG': 'INFO'}}}}")
    for name, item in value.items():
        if isinstance(item, (dict, list)) or item is None:
            raise MadError(f"context key {key!r}: {name!r} must be a string, not "
                           f"{type(item).__name__}", where=where,
                           fix=f"write {name!r}: 'text' (numbers and booleans are turned into text)")
    data[key] = {name: _text(item) for name, item in value.items()}


def _fold_slurm_env_vars(data: dict[str, Any]) -> None:
    """``slurm.env_vars`` (this plugin's older spelling) is an alias of the top-level ``env_vars``;
    a name given in both takes the top-level value."""
    slurm = data.get("slurm")
    if not isinstance(slurm, dict) or "env_vars" not in slurm:
        return
    alias = slurm.pop("env_vars")
    if isinstance(alias, dict) and isinstance(data.get("env_vars") or {}, dict):
        data["env_vars"] = {**alias, **(data.get("env_vars") or {})}
    elif alias not in (None, ""):
        data.setdefault("env_vars", alias)  # the wrong shape is reported by _str_map


def _env_names(env: Mapping[str, str], where: str) -> None:
    bad = [name for name in env if not _ENV_NAME.match(name)]
    if bad:
        raise MadError(f"context key 'env_vars': {bad[0]!r} is not an environment variable name", where=where,
                       fix="use letters, digits and underscores, starting with a letter, e.g. 'NCCL_DEBUG'")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scalar_text(data: dict[str, Any], key: str, where: str, example: str) -> None:
    if key not in data or data[key] is None:
        return
    if isinstance(data[key], (dict, list, bool)):
        raise MadError(f"context key {key!r} must be a string, not {type(data[key]).__name__}",
                       where=where, fix=f"write it as {example}")
    data[key] = str(data[key])


def _list_of(data: dict[str, Any], key: str, where: str, item_ok, example: str) -> None:
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(item_ok(item) for item in value):
        raise MadError(f"context key {key!r} has the wrong shape", where=where, fix=f"write it as {example}")


def _is_script(item: Any) -> bool:
    return (isinstance(item, dict) and isinstance(item.get("path"), str) and item["path"].strip() != ""
            and isinstance(item.get("args", ""), str))


def _validate(data: dict[str, Any], where: str) -> None:
    vendor = str(data.get("gpu_vendor") or "NONE").strip().upper()
    if vendor not in VENDORS:
        raise MadError(f"gpu_vendor {data.get('gpu_vendor')!r} is not one of {', '.join(VENDORS)}",
                       where=where, fix=f"use AMD, NVIDIA or NONE, e.g. {EXAMPLE}")
    data["gpu_vendor"] = vendor
    data["guest_os"] = str(data.get("guest_os") or DEFAULT_GUEST_OS).strip().upper()
    _fold_slurm_env_vars(data)
    for key in ("docker_env_vars", "docker_build_arg", "docker_mounts", "env_vars"):
        _str_map(data, key, where)
    _env_names(data["env_vars"], where)
    _scalar_text(data, "docker_gpus", where, "'docker_gpus': '0-3,6' or 'all'")
    _scalar_text(data, "docker_cpus", where, "'docker_cpus': '0-15'")
    _scalar_text(data, "gpu_architecture", where, "'gpu_architecture': 'gfx942'")
    scripts = "[{'path': 'scripts/common/pre_scripts/run_rocenv_tool.sh', 'args': '-v'}]"
    _list_of(data, "pre_scripts", where, _is_script, scripts)
    _list_of(data, "post_scripts", where, _is_script, scripts)
    for key in ("log_error_patterns", "log_error_benign_patterns"):
        _list_of(data, key, where, lambda item: isinstance(item, str), f"'{key}': ['CUDA out of memory']")
    _list_of(data, "tools", where, lambda item: isinstance(item, dict) and isinstance(item.get("name"), str),
             "'tools': [{'name': 'rocprof'}]")
    _scalar_text(data, "model_args", where, "'model_args': '--batch-size 32'")
    _scalar_text(data, "MAD_CONTAINER_IMAGE", where, "'MAD_CONTAINER_IMAGE': 'rocm/pytorch:latest'")
    _scalar_text(data, "MAD_ROCM_PATH", where, "'MAD_ROCM_PATH': '/opt/rocm-6.2.0'")
    if data.get("MAD_ROCM_PATH"):
        data["rocm_path"] = data["MAD_ROCM_PATH"]  # madengine: the host's ROCm root, before detection
    for key in GPU_COUNT_KEYS:
        if key in data and (isinstance(data[key], bool) or not str(data[key]).strip().lstrip("-").isdigit()
                            or int(str(data[key])) < -1):
            raise MadError(f"context key {key!r} = {data[key]!r} is not a GPU count", where=where,
                           fix=f"give a whole number (or -1 for all GPUs), e.g. '{key}': 4")
    n_gpus = data.get("n_system_gpus")
    if isinstance(n_gpus, bool) or not str(n_gpus).strip().isdigit():
        raise MadError(f"n_system_gpus {n_gpus!r} is not a GPU count", where=where,
                       fix="give a whole number, e.g. 'n_system_gpus': 8")
    data["n_system_gpus"] = int(str(n_gpus).strip())


# Top-level GPU-count overrides of every card's n_gpus, in madengine's order of precedence
# (``utils/gpu_config.py`` GPU_FIELD_ALIASES).
GPU_COUNT_KEYS = ("gpus_per_node", "gpu_count", "n_gpus", "num_gpus", "ngpus")


def card_overrides(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the context replaces in every card: ``args`` (``model_args``) and ``n_gpus`` (the first
    of ``GPU_COUNT_KEYS`` given), as madengine does at run time."""
    overrides: dict[str, Any] = {}
    if data.get("model_args") is not None:
        overrides["args"] = str(data["model_args"])
    for key in GPU_COUNT_KEYS:
        if data.get(key) not in (None, ""):
            overrides["n_gpus"] = int(str(data[key]))
            break
    return overrides


@dataclass(frozen=True)
class Context:
    """The merged run context: ``data`` is what models see, ``host`` what was detected."""

    data: dict[str, Any]
    host: HostFacts

    @property
    def gpu_vendor(self) -> str:
        return str(self.data.get("gpu_vendor") or "NONE")

    @property
    def guest_os(self) -> str:
        return str(self.data.get("guest_os") or "")

    @property
    def gpu_architecture(self) -> str:
        return str(self.data.get("gpu_architecture") or "")

    @property
    def gpu_product(self) -> str:
        return str(self.data.get("gpu_product") or "")

    @property
    def n_system_gpus(self) -> int:
        return int(self.data.get("n_system_gpus") or 0)

    @property
    def docker_env_vars(self) -> dict[str, str]:
        return self.data.setdefault("docker_env_vars", {})

    @property
    def env_vars(self) -> dict[str, str]:
        """The top-level ``env_vars`` (madengine's deployment variables; ``slurm.env_vars`` folded in)."""
        return self.data.setdefault("env_vars", {})

    @property
    def docker_build_args(self) -> dict[str, str]:
        return self.data.setdefault("docker_build_arg", {})

    @property
    def docker_mounts(self) -> dict[str, str]:
        return self.data.setdefault("docker_mounts", {})

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def to_json(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, host: HostFacts | None = None) -> Context:
        """A context sent as JSON (``to_json``) to another process, e.g. a SLURM node.

        ``host`` is the receiving machine's facts (device flags follow the GPUs it really has);
        by default they are detected there.
        """
        return cls(data=copy.deepcopy(dict(data)), host=detect_host() if host is None else host)


def _declare_gpus(data: dict[str, Any], host: HostFacts, gpus_option: str | None) -> None:
    """``--mad-gpus LIST`` declares the GPUs where detection found none."""
    option = str(gpus_option or "").strip().lower()
    if option in ("", "all", "none"):
        return
    declared = parse_gpu_list(option)
    if host.gpu_count == 0 and declared:
        data["n_system_gpus"] = max(declared) + 1
        data["docker_env_vars"]["MAD_SYSTEM_NGPUS"] = str(data["n_system_gpus"])


def build_context(*, context_file: str | None = None, context_text: str | None = None,
                  host: HostFacts | None = None, gpus_option: str | None = None,
                  base: Mapping[str, Any] | None = None) -> Context:
    """Host facts, then ``base`` (what a build manifest carries), then the context file, then the
    context text (later wins, dicts merged)."""
    host = detect_host() if host is None else host
    user: dict[str, Any] = deep_merge({}, base or {})
    if context_file:
        user = deep_merge(user, load_context_file(context_file))
    if context_text:
        user = deep_merge(user, parse_context_string(context_text))
    data = deep_merge(host_context(host), user)
    given = [f"--mad-context-file {context_file}" if context_file else "", "--mad-context" if context_text else ""]
    where = " / ".join(name for name in given if name) or "detected host context"
    _validate(data, where)
    _flow_user_overrides(data, user)
    _declare_gpus(data, host, gpus_option)
    return Context(data=data, host=host)


def _normal_arch(name: str) -> str:
    return name.strip().split(":")[0].casefold()


def skip_reason(card_skip_gpu_arch: tuple[str, ...], context: Context) -> str | None:
    """Why a card's ``skip_gpu_arch`` rules this machine out, or None when it may run.

    gfx/sm names compare with the architecture; product names ("A100", "NVIDIA A100-SXM4")
    compare in their short form with the GPU product.
    """
    arch = _normal_arch(context.gpu_architecture)
    product = normalise_product(context.gpu_product or context.host.gpu_product).casefold()
    for entry in card_skip_gpu_arch:
        wanted = _normal_arch(entry)
        if not wanted:
            continue
        if wanted == arch or (product and normalise_product(entry).casefold() == product):
            shown = context.gpu_architecture if wanted == arch else context.gpu_product or product
            return f"skip_gpu_arch lists {entry.strip()!r}, which matches this machine's GPU ({shown})"
    return None
