"""ModelCard: one model of a MAD package, typed leniently, unknown keys kept."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import MadError
from .jsonfile import require_object

DEFAULT_TIMEOUT = 7200
REQUIRED = ("name", "dockerfile", "scripts")


def _split(value: Any) -> tuple[str, ...]:
    """A list or a comma string → tuple of stripped non-empty strings."""
    if value in (None, ""):
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


MAX_N_GPUS = 1024  # per node; far above any real node
MAX_TIMEOUT = 30 * 24 * 3600  # seconds; socket and SDK timeouts overflow far beyond
# Fields read as text: a JSON string, or a number madengine's str() would accept.
TEXT_FIELDS = ("name", "dockerfile", "scripts", "args", "multiple_results", "training_precision", "owner",
               "url", "data", "additional_docker_run_options", "dockercontext")


def check_types(raw: dict[str, Any], label: str) -> None:
    """Refuse a list, object or boolean where a card holds text or a number, naming the field."""
    for key in (*TEXT_FIELDS, "n_gpus", "timeout"):
        value = raw.get(key)
        if isinstance(value, (bool, list, dict)):
            raise MadError(f"field {key!r} is a JSON {type(value).__name__} ({_short(value)})", where=label,
                           fix=f"write {key!r} as a string (e.g. \"{key}\": \"...\"), as madengine's cards do")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_n_gpus(value: Any, where: str) -> int:
    if value in (None, ""):
        return -1
    try:
        n = int(str(value).strip())
        if n > MAX_N_GPUS:
            raise MadError(f"n_gpus {_short(value)} is larger than {MAX_N_GPUS}", where=where,
                           fix='use the GPU count of one node, or "-1" for all of them')
    except ValueError:
        raise MadError(f"n_gpus {value!r} is not a number", where=where,
                       fix='use a GPU count such as "1" or "8", or "-1" for all GPUs of the node') from None
    if n < -1:
        raise MadError(f"n_gpus {value!r} is negative", where=where, fix='use "-1" for all GPUs')
    return n


def parse_timeout(value: Any, where: str) -> int | None:
    """Seconds, or None for no timeout (-1/0)."""
    if value in (None, ""):
        return DEFAULT_TIMEOUT
    try:
        seconds = int(float(str(value).strip()))
    except (ValueError, OverflowError):
        raise MadError(f"timeout {_short(value)} is not a number of seconds", where=where,
                       fix="use an integer such as 3600, or -1 for no timeout") from None
    if seconds > MAX_TIMEOUT:
        raise MadError(f"timeout {_short(value)} is longer than {MAX_TIMEOUT} s (30 days)", where=where,
                       fix="use a realistic limit such as 7200, or -1 for no timeout")
    return None if seconds <= 0 else seconds


def _string_map(value: Any, key: str, where: str) -> dict[str, str]:
    if value in (None, ""):
        return {}
    require_object(value, key, where=where,
                   fix=f'write {key} as a JSON object, e.g. {{"NAME": "value"}}')
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True)
class ModelCard:
    name: str  # full name: "dummy" or "dir/name"
    dockerfile: str  # package-root-relative prefix, e.g. "docker/dummy"
    scripts: str  # package-root-relative path to the script (or dir)
    source: str  # registry file the card came from (for error messages)
    directory: str | None = None  # scripts/<dir> family, None for the root registry
    n_gpus: int = -1
    timeout: int | None = DEFAULT_TIMEOUT
    tags: tuple[str, ...] = ()
    args: str = ""
    params: tuple[tuple[str, str], ...] = ()  # from "tag:k=v" selections
    multiple_results: str = ""
    skip_gpu_arch: tuple[str, ...] = ()
    training_precision: str = ""
    owner: str = ""
    url: str = ""
    cred: str = ""  # credential.json entry the model, its build and its clone use (workload.credentials)
    data: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)
    distributed: dict[str, Any] | None = None
    slurm: dict[str, Any] | None = None
    additional_docker_run_options: str = ""
    dockercontext: str = ""
    docker_build_arg: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the card as written, unknown keys too

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str, directory: str | None = None) -> ModelCard:
        """Build a card from a registry entry. Paths must already be root-relative."""
        require_object(raw, "a card", where=source,
                       fix="make every entry of the list a JSON object with name, dockerfile and scripts")
        label = f"{source}: card {raw.get('name', '?')!r}"
        missing = [key for key in REQUIRED if not str(raw.get(key) or "").strip()]
        if missing:
            raise MadError(f"missing required field(s) {', '.join(missing)}", where=label,
                           fix=f"add {', '.join(repr(m) for m in missing)} to the card")
        check_types(raw, label)
        return cls(
            name=str(raw["name"]) if directory is None else f"{directory}/{raw['name']}",
            dockerfile=str(raw["dockerfile"]),
            scripts=str(raw["scripts"]),
            source=source,
            directory=directory,
            n_gpus=parse_n_gpus(raw.get("n_gpus"), label),
            timeout=parse_timeout(raw.get("timeout"), label),
            tags=_split(raw.get("tags")),
            args=str(raw.get("args") or ""),
            multiple_results=str(raw.get("multiple_results") or ""),
            skip_gpu_arch=_split(raw.get("skip_gpu_arch")),
            training_precision=str(raw.get("training_precision") or ""),
            owner=str(raw.get("owner") or ""),
            url=str(raw.get("url") or ""),
            cred=str(raw.get("cred") or ""),
            data=str(raw.get("data") or ""),
            env_vars=_string_map(raw.get("env_vars"), "env_vars", label),
            distributed=raw.get("distributed") or None,
            slurm=raw.get("slurm") or None,
            additional_docker_run_options=str(raw.get("additional_docker_run_options") or ""),
            dockercontext=str(raw.get("dockercontext") or ""),
            docker_build_arg=_string_map(raw.get("docker_build_arg"), "docker_build_arg", label),
            raw=dict(raw),
        )

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def full_args(self) -> str:
        """The card's args with selection parameters appended as ``--k v``."""
        extra = " ".join(f"--{k} {v}" for k, v in self.params)
        return f"{self.args} {extra}".strip() if extra else self.args

    @property
    def test_id(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}[{'-'.join(f'{k}={v}' for k, v in self.params)}]"

    def with_params(self, params: tuple[tuple[str, str], ...]) -> ModelCard:
        return replace(self, params=params)

    def to_dict(self) -> dict[str, Any]:
        """The card as madengine writes it into manifests: raw keys, full name, final args."""
        data = dict(self.raw)
        data.update(name=self.name, dockerfile=self.dockerfile, scripts=self.scripts,
                    args=self.full_args)
        return data

    def script_path(self, package: Path) -> Path:
        return package / self.scripts
