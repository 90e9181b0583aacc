"""MAD data providers: ``data.json`` (and the context's ``data``) → mounts, env and download steps.

``data.json`` maps a dataname to provider configs: ``{"<dataname>": {"<type>": {...}}}``; the
context key ``data`` (same shape) replaces the file's entry of each dataname it names. A card's
``data`` is one dataname or a comma list. Per dataname the types are tried in madengine's order
(custom, local, minio, nas, aws) and the first whose source is there is selected; none → the model
only gets ``MAD_DATANAME``. The i-th dataname's data lives at ``<home or /data_dlm>_<i>`` in the
container (``MAD_DATAHOME``, comma-joined for several datanames).

- ``local``: the host ``path`` (relative = to the package root) is bind-mounted there, read-only
  unless ``readwrite`` is true.
- ``custom``: the package script ``path`` runs in the container before the pre scripts, in that
  dir, with ``args``; ``mirrorlocal`` bind-mounts ``<mirrorlocal>/<dataname>`` there read-write
  so the download persists on the host. A fixed wrapper measures the download's duration and
  ``du -sh`` size into a file of the model dir, read back by :func:`data_fields`.
- ``minio``, ``nas``, ``aws`` need AMD-internal endpoints and credentials: refused clearly.
"""
from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cards import ModelCard
from ..errors import MadError
from ..jsonfile import read_json
from .layout import MODEL_DIR, WORKSPACE
from .paths import confined

ORDER = ("custom", "local", "minio", "nas", "aws")
UNSUPPORTED = ("minio", "nas", "aws")
DEFAULT_HOME = "/data_dlm"
DATA_FILE = "data.json"
_TRUE = ("true", "1", "yes")

# Runs one custom data script: $1 datahome, $2 measurement file, then the script and its args.
# User values arrive only as positional parameters. Writes "<exit code> <uptime before> <uptime
# after> <du -sh size>" (/proc/uptime needs no tool and has centisecond resolution).
DATA_STEP = r'''
mad_home=$1; mad_out=$2; shift 2
mkdir -p "$mad_home" && cd "$mad_home" || exit 1
read mad_t0 mad_rest < /proc/uptime
bash "$@"; mad_rc=$?
read mad_t1 mad_rest < /proc/uptime
mad_size=$(du -sh . 2>/dev/null | cut -f1)
printf '%s %s %s %s\n' "$mad_rc" "$mad_t0" "$mad_t1" "$mad_size" > "$mad_out"
if [ "$mad_rc" -ne 0 ]; then
  printf 'pytest-madengine: data script %s failed with exit code %s\n' "$1" "$mad_rc" >&2
fi
exit $mad_rc
'''


@dataclass
class Provider:
    """The provider selected for one dataname of the card."""

    dataname: str
    kind: str  # custom / local
    home: str  # MAD_DATAHOME of this dataname in the container
    volume: str = ""  # Docker SDK "host:container:mode", '' without a mount
    step: list[str] = field(default_factory=list)  # custom: the download step's argv
    measure_file: str = ""  # custom: name of the measurement file in the model dir


@dataclass
class DataPlan:
    """What the card's data needs in the container."""

    env: dict[str, str] = field(default_factory=dict)  # MAD_DATAHOME
    volumes: list[str] = field(default_factory=list)
    steps: list[tuple[str, list[str]]] = field(default_factory=list)  # run before the pre scripts
    providers: list[Provider] = field(default_factory=list)


def datanames(value: str) -> list[str]:
    return [name.strip() for name in str(value or "").split(",") if name.strip()]


def resolve_data(card: ModelCard, context_data: Mapping[str, Any] | None, package_root: Path, *,
                 model_dir: str = MODEL_DIR, data_file: Path | None = None,
                 force_mirror_local: str | None = None) -> DataPlan:
    """The plan for the card's ``data``; an empty plan when it names no data or nothing defines any.

    ``data_file`` replaces the package's data.json (madengine's ``--data-config``);
    ``force_mirror_local`` sets every non-local provider's ``mirrorlocal`` (madengine's
    ``--force-mirror-local``).
    """
    names = datanames(card.data)
    configs = load_configs(context_data or {}, Path(package_root), data_file) if names else None
    if configs and force_mirror_local:
        configs = {name: (_mirrored(entry, force_mirror_local), origin) for name, (entry, origin) in configs.items()}
    if not configs:
        return DataPlan()
    plan = DataPlan()
    for index, name in enumerate(names):
        if name not in configs:
            raise _undefined(card, name, Path(package_root))
        entry, origin = configs[name]
        provider = select(name, entry, index, package_root=Path(package_root), origin=origin,
                          model_dir=model_dir)
        if provider is not None:
            _add(plan, provider)
    if plan.providers:
        plan.env["MAD_DATAHOME"] = ",".join(p.home for p in plan.providers)
    return plan


def _mirrored(entry: Any, mirror: str) -> Any:
    """A dataname's providers with ``mirrorlocal`` set to ``mirror`` (the local provider keeps none)."""
    if not isinstance(entry, Mapping):
        return entry
    return {kind: ({**config, "mirrorlocal": mirror} if kind != "local" and isinstance(config, Mapping) else config)
            for kind, config in entry.items()}


def load_configs(context_data: Mapping[str, Any], package_root: Path,
                 data_file: Path | None = None) -> dict[str, tuple[Any, str]] | None:
    """{dataname: (entry, where it comes from)}; None when neither data.json (or ``data_file``) nor the
    context has any."""
    path = Path(data_file) if data_file else package_root / DATA_FILE
    configs: dict[str, tuple[Any, str]] = {}
    if path.is_file():
        raw = read_json(path, fix='write data.json as {"<dataname>": {"<provider>": {...}}}')
        configs.update((str(k), (v, str(path))) for k, v in _object(raw, str(path)).items())
    override = context_data.get("data")
    if override is not None:
        configs.update((str(k), (v, "context 'data'")) for k, v in _object(override, "context 'data'").items())
    return configs if path.is_file() or override is not None else None


def select(name: str, entry: Any, index: int, *, package_root: Path, origin: str,
           model_dir: str = MODEL_DIR) -> Provider | None:
    """The first provider of madengine's order whose source is there, or None."""
    entry = _object(entry, f"{origin}: dataname {name!r}")
    for kind in ORDER:
        config = entry.get(kind)
        if config is None:
            continue
        where = f"{origin}: dataname {name!r}, provider {kind!r}"
        if kind in UNSUPPORTED:
            raise MadError(f"provider {kind!r} of dataname {name!r} is not supported by pytest-madengine "
                           "(it needs AMD-internal endpoints and credentials)", where=where,
                           fix="give a 'local' provider with the host path that holds the data, "
                               "or a 'custom' provider with a download script")
        config = _object(config, where)
        home = _datahome(config, index, where)
        found = (_local(name, config, home, package_root, where) if kind == "local"
                 else _custom(name, config, home, index, package_root, where, model_dir))
        if found is not None:
            return found
    return None


def data_fields(plan: DataPlan, model_dir: Path) -> dict[str, str]:
    """perf.csv's data_provider_type / data_size / data_download_duration after the run.

    Several providers: types and sizes comma-joined, durations summed. A local provider adds no
    size and 0 s; a custom one that never reported (it did not run) leaves the duration empty.
    """
    if not plan.providers:
        return {}
    sizes: list[str] = []
    durations: list[float | None] = []
    for provider in plan.providers:
        if provider.kind != "custom":
            durations.append(0.0)
            continue
        duration, size = read_measurement(model_dir / provider.measure_file)
        durations.append(duration)
        if size:
            sizes.append(size)
    total = "" if None in durations else f"{sum(d for d in durations if d is not None):.2f}"
    return {"data_provider_type": ",".join(p.kind for p in plan.providers), "data_size": ",".join(sizes),
            "data_download_duration": total}


def read_measurement(path: Path) -> tuple[float | None, str]:
    """(seconds, du size) from DATA_STEP's file; (None, '') when absent or unreadable."""
    try:
        parts = path.read_text(encoding="utf-8", errors="replace").split()
        duration = round(float(parts[2]) - float(parts[1]), 2)
    except (OSError, IndexError, ValueError):
        return None, ""
    return duration, parts[3] if len(parts) > 3 else ""


# --- providers -----------------------------------------------------------------------------

def _local(name: str, config: dict[str, Any], home: str, package_root: Path, where: str) -> Provider | None:
    if "mirrorlocal" in config:
        raise MadError("mirrorlocal cannot be used with the local provider", where=where,
                       fix="remove mirrorlocal: local data is mounted from its 'path' directly")
    host = _host_path(_required(config, "path", where, '{"path": "/host/dir/with/the/data"}'), package_root,
                      where)
    if not host.exists():
        return None
    mode = "rw" if str(config.get("readwrite", "")).lower() in _TRUE else "ro"
    return Provider(name, "local", home, volume=f"{host}:{home}:{mode}")


def _custom(name: str, config: dict[str, Any], home: str, index: int, package_root: Path, where: str,
            model_dir: str) -> Provider | None:
    script = _package_relative(_required(config, "path", where, '{"path": "scripts/common/data/get.sh"}'),
                               where)
    if not confined(package_root, script, where=where, field="path").is_file():
        return None
    try:
        args = shlex.split(str(config.get("args") or ""))
    except ValueError as exc:
        raise MadError(f"args cannot be split ({exc})", where=where, fix="balance the quotes") from None
    volume = ""
    if config.get("mirrorlocal"):
        volume = f"{_mirror(name, str(config['mirrorlocal']), package_root, where)}:{home}:rw"
    measure = f".mad-data-{index}"
    step = ["bash", "-c", DATA_STEP, "mad-data", home, f"{model_dir}/{measure}", f"{WORKSPACE}/{script}", *args]
    return Provider(name, "custom", home, volume=volume, step=step, measure_file=measure)


def _mirror(name: str, value: str, package_root: Path, where: str) -> Path:
    """``<mirrorlocal>/<dataname>`` on the host, created; mirrorlocal itself must exist (as in madengine)."""
    base = _host_path(value, package_root, where)
    if not base.is_dir():
        raise MadError(f"mirrorlocal {value!r} is not an existing directory", where=where,
                       fix="create it on the host, or remove mirrorlocal")
    if "/" in name or name in (".", ".."):
        raise MadError(f"dataname {name!r} cannot name a directory under mirrorlocal", where=where,
                       fix="use a dataname without '/'")
    mirror = base / name
    mirror.mkdir(exist_ok=True)
    return mirror


# --- helpers -------------------------------------------------------------------------------

def _add(plan: DataPlan, provider: Provider) -> None:
    plan.providers.append(provider)
    if provider.volume:
        plan.volumes.append(provider.volume)
    if provider.step:
        plan.steps.append(("pre", provider.step))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MadError(f"expected a JSON object, found {type(value).__name__}", where=where,
                       fix='use {"<dataname>": {"<provider>": {...}}}, e.g. '
                           '{"mydata": {"local": {"path": "/data/mydata"}}}')
    return value


def _required(config: dict[str, Any], key: str, where: str, example: str) -> str:
    value = str(config.get(key) or "")
    if not value:
        raise MadError(f"'{key}' is missing", where=where, fix=f"write the provider as {example}")
    return value


def _datahome(config: dict[str, Any], index: int, where: str) -> str:
    home = f"{config.get('home') or DEFAULT_HOME}_{index}"
    if not home.startswith("/") or ":" in home or "," in home:
        raise MadError(f"home {home!r} is not an absolute container path without ':' or ','", where=where,
                       fix="use a path such as /data (the dataname's index is appended: /data_0)")
    return home


def _host_path(value: str, package_root: Path, where: str) -> Path:
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else package_root / path).resolve()
    if ":" in str(path):
        raise MadError(f"host path {str(path)!r} contains ':', which Docker bind mounts cannot express",
                       where=where, fix="use a path without ':' (a symlink to it works)")
    return path


def _package_relative(value: str, where: str) -> str:
    script = posixpath.normpath(value)
    if posixpath.isabs(script) or script.split("/")[0] == "..":
        raise MadError(f"path {value!r} is not inside the package", where=where,
                       fix="give the script's path relative to the package root (it runs as /myworkspace/<path>)")
    return script


def _undefined(card: ModelCard, name: str, package_root: Path) -> MadError:
    return MadError(f"dataname {name!r} is not defined in {package_root / DATA_FILE} nor in the context's 'data'",
                    where=f"{card.source}: card {card.name!r}, field 'data'",
                    fix=f'add {{"{name}": {{"local": {{"path": "/host/dir"}}}}}} to data.json (or to the '
                        "context's 'data'), or correct the card's 'data' field")
