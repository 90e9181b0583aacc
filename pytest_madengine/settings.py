"""The ``--mad-*`` options, their ini twins, and the frozen Settings record built from them."""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .errors import MadError

REGISTRY_FILE = "models.json"


@dataclass(frozen=True)
class Option:
    name: str  # without the leading "--mad-"
    kind: str  # "str", "bool", "list", "int"
    help: str
    default: Any = None
    metavar: str = ""  # what --help shows after the flag (else METAVARS, else VALUE)

    @property
    def flag(self) -> str:
        return f"--mad-{self.name}"

    @property
    def ini(self) -> str:
        return "mad_" + self.name.replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS: tuple[Option, ...] = (
    Option("package", "str", "root of the MAD package (default: the current directory)"),
    Option("tags", "list", "select models: name, tag, dir/name, dir/all, all, tag:k=v; "
           "repeatable and comma-separated"),
    Option("target", "str", "where models run: local, slurm or k8s (default: from the context)"),
    Option("context", "str", "additional context: JSON or a Python dict literal"),
    Option("context-file", "str", "additional context from a JSON file (applied before --mad-context)"),
    Option("timeout", "int", "override every model's timeout in seconds; 0 = no timeout"),
    Option("registry", "str", "registry to push built images to / pull them from"),
    Option("build-only", "bool", "build images and write the build manifest; run nothing", False),
    Option("manifest", "str", "run the models of a build manifest without building"),
    Option("manifest-output", "str", "where --mad-build-only writes the build manifest "
           "(default build_manifest.json)", "build_manifest.json"),
    Option("batch-manifest", "str", "batch build list: build only build_new models"),
    Option("use-image", "str", "run with this image instead of building (auto: the card's "
           "env_vars.DOCKER_IMAGE_NAME)"),
    Option("skip-run", "bool", "start containers and pre scripts but not the model", False),
    Option("keep-alive", "bool", "keep containers (and model dirs) after the run", False),
    Option("keep-model-dir", "bool", "keep the model directory after the run", False),
    Option("live-output", "bool", "stream container output to the terminal", False),
    Option("clean-cache", "bool", "build images without the Docker build cache", False),
    Option("no-sys-env", "bool", "do not capture the system environment (<model>_env.csv, the GPU table at the "
           "top of the run log); the context's gen_sys_env_details wins", False),
    Option("perf-csv", "str", "results file, appended (default perf.csv)", "perf.csv"),
    Option("gpus", "str", "GPU pool: LIST (0-3,6), all, or none (run without GPU devices)"),
    Option("log-dir", "str", "directory for build and run logs (default mad_logs)", "mad_logs"),
    Option("disable-skip-gpu-arch", "bool", "run models even when skip_gpu_arch matches", False),
    Option("discover-timeout", "int", "seconds a get_models_json.py may run (default 120)", 120),
    Option("target-archs", "list", "with --mad-build-only: build one image per GPU architecture "
           "(<image>_<arch>, build arg MAD_SYSTEM_GPU_ARCHITECTURE), e.g. gfx942,gfx90a; repeatable"),
    Option("history", "str", "results history: PATH or sqlite:///PATH (an SQLite file), "
           "postgresql://USER@HOST:PORT/DB (shared by CI runners), or none "
           "(default <package>/.mad/history.sqlite)"),
    Option("references", "str", "reference values (YAML or JSON file): a model outside its band fails "
           "(phase performance)"),
    Option("compare", "str", "compare each model with its history baseline: last, best, mean:N, median:N, "
           "mean:7d, median:12h or a session id"),
    Option("fail-on-regression", "str", "with --mad-compare: fail a model more than PCT percent worse "
           "than its baseline"),
    Option("repeat", "int", "run each model N times after one build; every run is recorded, the median "
           "judged (default 1)", 1),
    Option("max-cv", "str", "with --mad-repeat: fail a model whose runs vary by more than PCT percent "
           "(coefficient of variation)"),
    Option("summary-output", "str", "also write the session's summary as JSON to FILE (madengine's "
           "--summary-output)"),
    Option("data-config", "str", "data providers from FILE instead of the package's data.json (madengine's "
           "--data-config)"),
    Option("tools-config", "str", "profiling tools from FILE instead of the package's scripts/common/tools.json "
           "(madengine's --tools-config)"),
    Option("force-mirror-local", "str", "mirror every dataset into DIR: sets each non-local data provider's "
           "mirrorlocal (madengine's --force-mirror-local)"),
)

# Options the targets own (``targets/<name>/cli.py``, and any a plugin's target declares), registered
# in the same group by ``add_options``; their values reach the targets as ``Settings.target_options``.
_TARGET_OPTIONS: dict[str, Option] = {}


def option(name: str) -> Option:
    return next(opt for opt in (*OPTIONS, *_TARGET_OPTIONS.values()) if opt.name == name)


def _default(name: str) -> str:
    """An option's default, stated once in ``OPTIONS`` (Settings' field defaults read it too)."""
    return str(option(name).default)


# Options whose presence switches the plugin on.
SELECTION = ("tags", "manifest", "batch-manifest", "build-only", "package")


# What ``--help`` shows after each valued option (pytest-style: DIR, FILE, N, S for seconds).
METAVARS: dict[str, str] = {
    "package": "DIR", "tags": "TAG", "target": "NAME", "context": "STR", "context-file": "FILE",
    "timeout": "S", "registry": "URL", "manifest": "FILE", "manifest-output": "FILE", "batch-manifest": "FILE",
    "use-image": "IMAGE", "perf-csv": "FILE", "gpus": "LIST", "log-dir": "DIR", "discover-timeout": "S",
    "target-archs": "ARCHS", "history": "URL", "references": "FILE", "compare": "SPEC",
    "fail-on-regression": "PCT", "repeat": "N", "max-cv": "PCT", "summary-output": "FILE", "data-config": "FILE",
    "tools-config": "FILE", "force-mirror-local": "DIR",
}


def add_options(parser: pytest.Parser, target_options: tuple[Option, ...] = ()) -> None:
    """Register every ``--mad-*`` option and its ini twin; ``target_options`` are the targets' own."""
    group = parser.getgroup("madengine", "MAD packages as tests (pytest-madengine)")
    _TARGET_OPTIONS.update({opt.name: opt for opt in target_options})
    for opt in (*OPTIONS, *target_options):
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.dest, help=opt.help)
            parser.addini(opt.ini, opt.help, type="bool", default=opt.default)
        elif opt.kind == "list":
            group.addoption(opt.flag, action="append", default=None, dest=opt.dest, help=opt.help,
                            metavar=opt.metavar or METAVARS.get(opt.name, "VALUE"))
            parser.addini(opt.ini, opt.help, type="args", default=[])
        else:
            group.addoption(opt.flag, action="store", default=None, dest=opt.dest, help=opt.help,
                            metavar=opt.metavar or METAVARS.get(opt.name, "VALUE"))
            parser.addini(opt.ini, opt.help, type="int" if opt.kind == "int" else "string", default=opt.default)


@dataclass(frozen=True)
class Settings:
    """Everything the user asked for, resolved once (CLI over ini over default)."""

    package: Path
    tags: tuple[str, ...] = ()
    target: str | None = None
    context: str | None = None
    context_file: str | None = None
    timeout: int | None = None
    registry: str | None = None
    build_only: bool = False
    manifest: Path | None = None
    manifest_output: Path = Path(_default("manifest-output"))
    batch_manifest: Path | None = None
    use_image: str | None = None
    skip_run: bool = False
    keep_alive: bool = False
    keep_model_dir: bool = False
    live_output: bool = False
    clean_cache: bool = False
    no_sys_env: bool = False
    perf_csv: Path = Path(_default("perf-csv"))
    gpus: str | None = None
    log_dir: Path = Path(_default("log-dir"))
    disable_skip_gpu_arch: bool = False
    discover_timeout: int = int(_default("discover-timeout"))
    history: Path | str | None = None  # None: --mad-history none; Path: an SQLite file; str: a URL (history.backend)
    history_named: bool = False  # the user named the history (an unusable one is then a usage error)
    references: Path | None = None
    compare: str | None = None  # validated when the session starts (history.spec.parse_compare_spec)
    fail_on_regression: float | None = None  # percent
    repeat: int = 1
    max_cv: float | None = None  # percent
    target_archs: tuple[str, ...] = ()
    # the targets' own options by name ("k8s-jobs": 8): int options as int, others as given or None
    target_options: dict[str, str | int | None] = field(default_factory=dict)
    summary_output: Path | None = None
    data_config: Path | None = None  # absolute
    tools_config: Path | None = None  # absolute
    force_mirror_local: str | None = None  # absolute
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def anchor(self) -> Path:
        """The file that stands for the package in node ids (``<anchor>::<model>``): the root
        ``models.json``, or the build manifest a session runs when the package has none."""
        registry = self.package / REGISTRY_FILE
        if registry.is_file():
            return registry
        for manifest in (self.manifest, self.batch_manifest):
            if manifest is not None and manifest.is_file():
                return manifest.resolve()
        return registry

    def anchor_nodeid(self, rootpath: Path) -> str:
        """The node id pytest gives the anchor file (relative to the rootdir, ``/``-separated)."""
        anchor = self.anchor.resolve()
        try:
            return anchor.relative_to(rootpath.resolve()).as_posix()
        except ValueError:
            return anchor.as_posix().lstrip("/")


def _raw(config: pytest.Config, opt: Option, namespace: argparse.Namespace | None = None) -> tuple[Any, bool]:
    """The option's value and whether the user gave it (CLI or ini). ``namespace``: read the
    command line from there (``early_config.known_args_namespace`` before options are parsed)."""
    value = getattr(namespace, opt.dest, None) if namespace is not None else config.getoption(opt.dest)
    if value is not None:
        return value, True
    if opt.kind == "list":
        value = config.getini(opt.ini)
        return value, bool(value)
    try:
        value = config.getini(opt.ini)
    except (pytest.UsageError, ValueError) as exc:  # a typed (int) ini value that does not parse
        raise pytest.UsageError(f"ini key {opt.ini} in {config.inipath}: {exc}. Fix: give a whole number, "
                                f"e.g. {opt.ini} = {opt.default or 600}.") from None
    if value in ("", None) or value == opt.default:
        return opt.default, False
    return value, True


def is_active(config: pytest.Config, namespace: argparse.Namespace | None = None) -> bool:
    """Whether a selection option (or the ``mad_package`` ini key) switches the plugin on."""
    for opt in OPTIONS:
        if opt.name in SELECTION and _raw(config, opt, namespace)[1]:
            return True
    return False


def check_inert(config: pytest.Config) -> None:
    """``--mad-*`` options on the command line of a session that selects no model: a usage error
    saying how to select models (otherwise pytest would only say "no tests ran")."""
    given = [opt.flag for opt in OPTIONS if config.getoption(opt.dest) is not None]
    if given:
        raise pytest.UsageError(
            f"{', '.join(given)} given, but no MAD models are selected, so the plugin is off. Fix: select "
            "models with --mad-tags NAME|TAG|all (or --mad-manifest FILE, --mad-batch-manifest FILE, "
            "--mad-build-only, --mad-package DIR, or the mad_package ini key).")


def _split_tags(values: list[str]) -> tuple[str, ...]:
    tags: list[str] = []
    for value in values or []:
        tags.extend(part.strip() for part in str(value).split(",") if part.strip())
    return tuple(tags)


def _as_int(opt: Option, value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"{opt.flag} (ini {opt.ini}): {value!r} is not a whole number. "
            f"Fix: give an integer, e.g. {opt.flag} {opt.default or 600}."
        ) from None


def from_config(config: pytest.Config, namespace: argparse.Namespace | None = None) -> Settings:
    """The Settings of a session. Raises pytest.UsageError for a malformed value."""
    values = {opt.dest: _raw(config, opt, namespace)[0] for opt in OPTIONS}
    package = Path(values["mad_package"] or Path.cwd())
    if not package.is_absolute():
        package = (Path.cwd() / package).resolve()
    target = values["mad_target"]  # checked by the session: a conftest or plugin may add targets

    def path(key: str) -> Path | None:
        return Path(values[key]) if values[key] else None

    try:
        results = _results_settings(values, package)
    except MadError as exc:  # e.g. --mad-repeat 0: a usage error before anything starts
        raise pytest.UsageError(exc.message) from None

    return Settings(
        package=package,
        tags=_split_tags(values["mad_tags"]),
        target=target,
        context=values["mad_context"],
        context_file=values["mad_context_file"],
        timeout=_as_int(option("timeout"), values["mad_timeout"]),
        registry=values["mad_registry"] or None,
        build_only=bool(values["mad_build_only"]),
        manifest=path("mad_manifest"),
        manifest_output=Path(values["mad_manifest_output"] or _default("manifest-output")),
        batch_manifest=path("mad_batch_manifest"),
        use_image=values["mad_use_image"] or None,
        skip_run=bool(values["mad_skip_run"]),
        keep_alive=bool(values["mad_keep_alive"]),
        keep_model_dir=bool(values["mad_keep_model_dir"]),
        live_output=bool(values["mad_live_output"]),
        clean_cache=bool(values["mad_clean_cache"]),
        no_sys_env=bool(values["mad_no_sys_env"]),
        perf_csv=Path(values["mad_perf_csv"] or _default("perf-csv")),
        gpus=values["mad_gpus"] or None,
        log_dir=Path(values["mad_log_dir"] or _default("log-dir")),
        disable_skip_gpu_arch=bool(values["mad_disable_skip_gpu_arch"]),
        discover_timeout=(_as_int(option("discover-timeout"), values["mad_discover_timeout"])
                          or int(_default("discover-timeout"))),
        target_options=_target_option_values(config, namespace),
        target_archs=_target_archs(values["mad_target_archs"], bool(values["mad_build_only"])),
        summary_output=path("mad_summary_output"),
        **_madengine_files(values),
        **results,
    )


def _target_option_values(config: pytest.Config,
                          namespace: argparse.Namespace | None) -> dict[str, str | int | None]:
    values: dict[str, str | int | None] = {}
    for opt in _TARGET_OPTIONS.values():
        raw = _raw(config, opt, namespace)[0]
        values[opt.name] = _as_int(opt, raw) if opt.kind == "int" else (raw or None)
    return values
def _madengine_files(values: dict[str, Any]) -> dict[str, Any]:
    """--mad-data-config / --mad-tools-config (existing files) and --mad-force-mirror-local (an existing
    directory), made absolute: SLURM nodes read them from the shared filesystem."""
    found: dict[str, Any] = {}
    for name, want_dir in (("data-config", False), ("tools-config", False), ("force-mirror-local", True)):
        opt = option(name)
        value = values[opt.dest]
        if not value:
            continue
        path = Path(value).absolute()
        if not (path.is_dir() if want_dir else path.is_file()):
            kind = "an existing directory" if want_dir else "an existing file"
            raise pytest.UsageError(f"{opt.flag} (ini {opt.ini}): {value!r} is not {kind}. Fix: give {kind}.")
        found[opt.dest.removeprefix("mad_")] = str(path) if want_dir else path
    return found


_ARCH_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _target_archs(values: list[str], build_only: bool) -> tuple[str, ...]:
    archs = _split_tags(values)
    if not archs:
        return ()
    flag = option("target-archs").flag
    bad = [arch for arch in archs if not _ARCH_NAME.match(arch)]
    if bad:
        raise pytest.UsageError(f"{flag}: {bad[0]!r} is not a GPU architecture name. Fix: list names such as "
                                f"{flag} gfx942,gfx90a.")
    if not build_only:
        raise pytest.UsageError(f"{flag} builds per-architecture images for a build manifest, so it needs "
                                f"--mad-build-only. Fix: add --mad-build-only, then run the manifest with "
                                "--mad-manifest on each host (it picks the image of the host's architecture).")
    return tuple(dict.fromkeys(archs))


def _results_settings(values: dict[str, Any], package: Path) -> dict[str, Any]:
    """History, references, compare and repeat settings, validated (MadError naming the option)."""
    def percent(name: str) -> float | None:
        raw = values["mad_" + name.replace("-", "_")]
        if raw in (None, ""):
            return None
        try:
            number = float(str(raw).rstrip("%"))
        except ValueError:
            number = -1.0
        if not 0 <= number < float("inf"):
            raise MadError(f"{raw!r} is not a percentage", where=f"--mad-{name}", fix=f"write e.g. --mad-{name} 5")
        return number

    history_raw = str(values["mad_history"] or "")
    history: Path | str | None = (None if history_raw.lower() == "none" else
                                  history_raw if "://" in history_raw else  # a URL: parsed at session start
                                  Path(history_raw).absolute() if history_raw else package / ".mad" / "history.sqlite")
    compare = str(values["mad_compare"]).strip() if values["mad_compare"] else None
    # The grammar of --mad-compare is checked when the session starts (history.spec).
    if compare is not None and history is None:
        raise MadError("--mad-compare needs the history", where="--mad-history none",
                       fix="leave out --mad-history none (or --mad-compare)")
    fail_on_regression, max_cv = percent("fail-on-regression"), percent("max-cv")
    if fail_on_regression is not None and compare is None:
        raise MadError("no baseline is chosen to compare with",
                       where="--mad-fail-on-regression", fix="add --mad-compare last (or best, mean:N, ...)")
    raw_repeat = values["mad_repeat"]
    try:
        repeat = int(raw_repeat) if raw_repeat not in (None, "") else 1
    except (TypeError, ValueError):
        repeat = 0
    if repeat < 1:
        raise MadError(f"{raw_repeat!r} is not a run count", where="--mad-repeat", fix="give a whole number ≥ 1")
    if max_cv is not None and repeat < 2:
        raise MadError("a coefficient of variation needs at least two runs", where="--mad-max-cv",
                       fix="add --mad-repeat N with N ≥ 2")
    references = Path(values["mad_references"]).absolute() if values["mad_references"] else None
    return {"history": history, "history_named": bool(history_raw), "references": references, "compare": compare,
            "fail_on_regression": fail_on_regression, "repeat": repeat, "max_cv": max_cv}
