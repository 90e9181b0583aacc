"""The resolved SLURM/distributed settings of one model run: preset < card < context."""
from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ...cards import ModelCard
from ...errors import MadError
from ...jsonfile import require_object
from ...workload.launchers import Launcher, disagg_split, get_launcher, rendezvous_timeout

# Values that end up on #SBATCH lines: no whitespace, quotes or newlines.
_SAFE = re.compile(r"^[A-Za-z0-9_.,:=@%+/\[\]-]*$")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")
_TEXT_KEYS = ("partition", "reservation", "nodelist", "account", "qos", "constraint", "exclude", "mem")
# madengine's names for our shared run dir (its job collection dir / workspace), first given wins
_SHARED_DIR_KEYS = ("shared_dir", "shared_workspace", "output_dir", "results_dir")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DISTRIBUTIONS = ("auto", "registry", "tar", "build", "local")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0", "")


@dataclass(frozen=True)
class NodeCheck:
    """``slurm.enable_node_check``: every node checks its GPUs before the model starts (``nodecheck``)."""

    command: tuple[str, ...] = ()  # node_check_command: the site's check (exit 0 = healthy); () = built-in
    retries: int = 2  # node_check_retries: resubmissions with the failing nodes excluded
    timeout: int = 120  # node_check_timeout: seconds one node's check may take


@dataclass(frozen=True)
class JobConfig:
    launcher: Launcher
    nnodes: int
    nproc_per_node: int
    gpus_per_node: int
    master_port: int | None  # None: the job script derives one from the job id (29500-30499)
    partition: str = ""
    time: str = ""
    exclusive: bool = False
    reservation: str = ""
    nodelist: str = ""
    account: str = ""
    qos: str = ""
    extra_sbatch_options: tuple[str, ...] = ()
    max_pending_seconds: int = 86400
    image_distribution: str = "auto"
    barrier_timeout: int = 1800
    shared_dir: str = ""
    python: str = ""
    constraint: str = ""
    exclude: str = ""
    mem: str = ""
    modules: tuple[str, ...] = ()  # `module load` before the nodes start
    network_interface: str = ""  # NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME
    env_vars: tuple[tuple[str, str], ...] = ()  # a card's slurm.env_vars: exported in the job and the containers
    node_check: NodeCheck | None = None  # None: enable_node_check is off
    launcher_given: bool = True  # False: no distributed.launcher (the perf row gets madengine's default)
    exports: tuple[tuple[str, str], ...] = ()  # the context's env_vars, exported in the job script

    @property
    def job_env(self) -> dict[str, str]:
        """What the job adds to every node's container: the network interface and ``env_vars``."""
        env = dict(self.env_vars)
        if self.network_interface:
            env.update(NCCL_SOCKET_IFNAME=self.network_interface, GLOO_SOCKET_IFNAME=self.network_interface)
        return env

    @property
    def script_env(self) -> dict[str, str]:
        """What the job script exports: ``job_env`` and the context's top-level ``env_vars`` (without
        ``MIOPEN_USER_DB_PATH``, which each node sets per process, as madengine's ``job.sh.j2`` does)."""
        return {**self.job_env, **{k: v for k, v in self.exports if k != "MIOPEN_USER_DB_PATH"}}


def load_preset() -> dict[str, dict[str, Any]]:
    text = resources.files("pytest_madengine").joinpath("presets/slurm.json").read_text()
    return json.loads(text)


def _section(source: Any, key: str, where: str) -> dict[str, Any]:
    value = (source or {}).get(key) if isinstance(source, dict) else None
    if value in (None, ""):
        return {}
    require_object(value, f"'{key}'", where=where,
                   fix=f'write it as {{"{key}": {{...}}}}')
    return value


def _merged(key: str, card: ModelCard, context: dict[str, Any]) -> dict[str, Any]:
    merged = dict(load_preset()[key])
    for where, source in ((f"card {card.name}", card.raw), ("context", context)):
        merged.update({k: v for k, v in _section(source, key, where).items() if v is not None})
    return merged


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise MadError(f"{value!r} is not a whole number", where=where,
                       fix="give an integer") from None
    if number < minimum:
        raise MadError(f"{number} is below {minimum}", where=where, fix=f"use {minimum} or more")
    return number


def _text(values: dict[str, Any], key: str) -> str:
    value = values.get(key)
    text = "" if value in (None, "") else str(value).strip()  # mem=0 is SLURM's "all the node's memory"
    if not _SAFE.match(text):
        raise MadError(f"{text!r} contains spaces or characters sbatch would misread",
                       where=f"slurm.{key}", fix="give a plain SLURM name or list")
    return text


def _extra_options(value: Any) -> tuple[str, ...]:
    """extra_sbatch_options: ["--mem=0", ...] or {"mem": "0", "gres": "gpu:8"}."""
    if isinstance(value, dict):
        items = [f"--{k}" if v in (True, "") else f"--{k}={v}" for k, v in value.items()]
    elif isinstance(value, str):
        items = value.split()
    else:
        items = [str(item) for item in value or []]
    for item in items:
        if not item.startswith("-") or "\n" in item or "\r" in item:
            raise MadError(f"sbatch option {item!r} is not an option", where="slurm.extra_sbatch_options",
                           fix='give options such as "--mem=0", one per list item')
    return tuple(items)


def _modules(value: Any) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else [str(item) for item in value or []]
    for item in items:
        if not _SAFE.match(item):
            raise MadError(f"module {item!r} is not a module name", where="slurm.modules",
                           fix='list module names, e.g. ["rocm/6.2.0", "gcc"]')
    return tuple(items)


def _env_vars(value: Any) -> tuple[tuple[str, str], ...]:
    if value in (None, ""):
        return ()
    require_object(value, "'slurm.env_vars'", where="slurm.env_vars", fix='write it as {"NCCL_DEBUG": "INFO"}')
    bad = [key for key in value if not _NAME.match(str(key))]
    if bad:
        raise MadError(f"{bad[0]!r} is not an environment variable name", where="slurm.env_vars",
                       fix="use letters, digits and underscores, starting with a letter")
    return tuple((str(key), str(item)) for key, item in value.items())


def _flag(value: Any, where: str) -> bool:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in _TRUE + _FALSE:
        return value if isinstance(value, bool) else text in _TRUE
    raise MadError(f"{value!r} is not true or false", where=where, fix="write true or false")


def _command(value: Any) -> tuple[str, ...]:
    """node_check_command: an argv list, or one string split like a shell would (never run by a shell)."""
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return tuple(str(item) for item in value)
    raise MadError(f"{value!r} is not a command", where="slurm.node_check_command",
                   fix='give an argv list such as ["/opt/site/gpu-check", "--quick"] or one command string')


def _node_check(slurm: dict[str, Any], launcher: Launcher) -> NodeCheck | None:
    if _flag(slurm.get("auto_cleanup_nodes", False), "slurm.auto_cleanup_nodes"):
        raise MadError(
            "auto_cleanup_nodes is refused: madengine cleans a dirty node by killing every process whose command "
            "line names ray or vllm there (pkill -9 -f), whoever runs it, other users' jobs included, which "
            "cannot be done safely from a model run", where="slurm.auto_cleanup_nodes",
            fix="set auto_cleanup_nodes to false (enable_node_check then leaves dirty nodes out of the job) and "
                "clean nodes with the site's own tooling, e.g. a SLURM epilog")
    if not _flag(slurm.get("enable_node_check", False), "slurm.enable_node_check"):
        return None
    if launcher.bare_metal:
        raise MadError(f"enable_node_check needs the per-node runner, and the {launcher.name} launcher submits the "
                       "card's own script, which starts its own containers", where="slurm.enable_node_check",
                       fix="check the nodes in the card's script, or set enable_node_check to false for this model")
    return NodeCheck(command=_command(slurm.get("node_check_command")),
                     retries=_int(slurm.get("node_check_retries", 2), "slurm.node_check_retries"),
                     timeout=_int(slurm.get("node_check_timeout") or 120, "slurm.node_check_timeout", minimum=1))


def _master_port(dist: dict[str, Any]) -> int | None:
    """The configured port (``port`` is madengine's name), or None: concurrent jobs on shared nodes
    then each get their own, 29500 + job id mod 1000, so two of them never collide on 29500."""
    key = "port" if dist.get("port") else "master_port"
    return _int(dist[key], f"distributed.{key}", minimum=1) if dist.get(key) else None


def _time_limit(value: Any, timeout: int | None) -> str:
    text = str(value or "").strip()
    if text:
        if not _TIME.match(text):
            raise MadError(f"time {text!r} is not a SLURM time", where="slurm.time",
                           fix='use minutes, "HH:MM:SS" or "D-HH:MM:SS"')
        return text
    if timeout:  # the model's timeout plus room for image loading and cleanup
        return str(math.ceil((timeout + 600) / 60))
    return ""


def _node_count(card: ModelCard, context: dict[str, Any]) -> int:
    """context distributed.nnodes > context slurm.nodes > card distributed.nnodes > card slurm.nodes."""
    layers = [(context, "context"), (card.raw, f"card {card.name}")]
    for source, where in layers:
        for section, key in (("distributed", "nnodes"), ("slurm", "nodes")):
            value = _section(source, section, where).get(key)
            if value not in (None, ""):
                return _int(value, f"{where}: {section}.{key}", minimum=1)
    return 1


def resolve(card: ModelCard, context: dict[str, Any], *, timeout: int | None) -> JobConfig:
    slurm = _merged("slurm", card, context)
    dist = _merged("distributed", card, context)
    launcher = get_launcher(dist.get("launcher"))
    nnodes = _node_count(card, context)
    if launcher.kind == "sglang-disagg":
        disagg_split(nnodes, dist)  # 3+ nodes and a consistent prefill/decode split, before submitting
    rendezvous_timeout(dist)  # a bad value is refused before submitting, not on the nodes
    gpus_per_node = _int(slurm.get("gpus_per_node") or 0, "slurm.gpus_per_node")
    nproc = dist.get("nproc_per_node") or gpus_per_node or (card.n_gpus if card.n_gpus > 0 else 1)
    distribution = str(slurm.get("image_distribution") or "auto")
    if distribution not in DISTRIBUTIONS:
        raise MadError(f"image_distribution {distribution!r} is unknown", where="slurm.image_distribution",
                       fix=f"use one of {', '.join(DISTRIBUTIONS)}")
    return JobConfig(
        launcher=launcher,
        launcher_given=bool(str(dist.get("launcher") or "").strip()),
        nnodes=nnodes,
        nproc_per_node=_int(nproc, "distributed.nproc_per_node", minimum=1),
        gpus_per_node=gpus_per_node,
        master_port=_master_port(dist),
        time=_time_limit(slurm.get("time"), timeout),
        exclusive=bool(slurm.get("exclusive")),
        extra_sbatch_options=_extra_options(slurm.get("extra_sbatch_options")),
        max_pending_seconds=_int(slurm.get("max_pending_seconds") or 86400, "slurm.max_pending_seconds"),
        image_distribution=distribution,
        barrier_timeout=_int(slurm.get("barrier_timeout") or 1800, "slurm.barrier_timeout", minimum=1),
        shared_dir=str(next((slurm[key] for key in _SHARED_DIR_KEYS if slurm.get(key)), "")),
        python=str(slurm.get("python") or ""),
        modules=_modules(slurm.get("modules")),
        network_interface=_text(slurm, "network_interface"),
        env_vars=_env_vars(slurm.get("env_vars")),
        exports=tuple((str(k), str(v)) for k, v in (context.get("env_vars") or {}).items()),
        node_check=_node_check(slurm, launcher),
        **{key: _text(slurm, key) for key in _TEXT_KEYS},
    )
