"""Judge a model run: exit code, timeout, performance, error scan → ModelResult with perf rows.

Success = performance found AND exit code 0 AND no error pattern in the log (madengine's rule,
plus the exit code). The failing phase is the first that applies: run (infrastructure error or
non-zero exit), timeout, sanity (error pattern, no performance). Performance that was found is
recorded in the rows even when the run failed.
"""
from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..cards import ModelCard
from ..errors import MadError
from ..fileio import printable
from ..records import FAILURE, PERF_CSV_COLUMNS, SKIPPED, SUCCESS, ImageRef, ModelResult
from ..workload.run import RunOutcome
from .aggregate import aggregate
from .errorscan import scan_config, scan_errors
from .performance import (
    TRAP,
    count_performances,
    find_performance,
    missing_results_error,
    read_multiple_results,
)

# (row model, performance, metric[, the results CSV's other columns]): one perf.csv row's measurement.
Measurement = tuple[str, str, str] | tuple[str, str, str, dict[str, str]]
ParseHook = Callable[[Any, str], "tuple[str, str] | None"]

TAIL_LINES = 30
MAX_REASON_LINE = 300
_DATA_FIELDS = ("data_provider_type", "data_size", "data_download_duration")
# A results CSV's columns that are the measurement itself (its status is judged, not copied).
_MEASURED = ("model", "performance", "metric", "status")
REASON_COLUMN = "reason"  # SKIPPED rows say why (madengine appends this column to perf.csv)
# The launcher a run without one records, per deployment type (madengine's defaults).
DEFAULT_LAUNCHERS = {"local": "docker", "slurm": "torchrun", "kubernetes": "native", "k8s": "native"}

NO_PERFORMANCE = ("no performance found in the log: the model script must print a line "
                  "'performance: <value> <metric>' (e.g. 'performance: 812.4 tokens/s'); "
                  f"if it writes a results CSV instead, {TRAP}")


def judge(card: ModelCard, outcome: RunOutcome, *, image: ImageRef | None, context: Any,
          gpus: tuple[int, ...], nnodes: int = 1, deployment_type: str = "local", launcher: str = "",
          parse_hook: ParseHook | None = None) -> ModelResult:
    """Turn what a target reported into the judged result and its perf.csv rows."""
    if outcome.skipped:
        return skipped_result(card, outcome.skipped, context, image=image, gpus=gpus)
    main_log = _read(outcome.log_path)
    log_text = _join_logs(main_log, outcome)
    measurements, perf_problem, properties = _measure(card, outcome, log_text, parse_hook)
    properties.update(artifact_properties(outcome.extra))
    properties.update(_target_properties(outcome.extra))
    scan = scan_config(getattr(card, "raw", None), _as_mapping(context))
    phase, reason = _verdict(outcome, perf_problem, scan_errors(log_text, scan))
    status = FAILURE if phase else SUCCESS
    rows = build_rows(card, measurements, status=status, image=image, context=context, gpus=gpus,
                      nnodes=nnodes, deployment_type=deployment_type, launcher=launcher,
                      test_duration=outcome.duration, extra=outcome.extra)
    first = next((m for m in measurements if m[1]), ("", "", ""))
    return ModelResult(
        model=card.name, status=status, phase=phase, reason=reason, performance=first[1],
        metric=first[2], rows=rows, log_path=str(outcome.log_path), log_tail=tail(main_log or log_text),
        image=image.name if image else "", gpus=tuple(gpus),
        build_duration=image.build_duration if image else 0.0, test_duration=outcome.duration,
        node_junit=str(outcome.extra.get("node_junit") or ""), properties=properties,
        notes=([_non_finite([m]) for m in measurements if m[1] and not _finite(m[1])] if status == SUCCESS else [])
        + ([f"{card.name}: {outcome.extra['keep_alive_hint']}"] if outcome.extra.get("keep_alive_hint") else []))


def artifact_properties(extra: Mapping[str, Any]) -> dict[str, str]:
    """JUnit properties naming the files a run left in the log dir: ``tool_output.<name>`` per tool output
    (``tool_output.<dir>/<name>`` when several nodes kept the same name) and ``env_csv``."""
    paths = extra.get("tool_outputs") or []
    found: dict[str, str] = {}
    for path in (Path(str(item)) for item in (paths if isinstance(paths, list) else [])):
        name = path.name if f"tool_output.{path.name}" not in found else f"{path.parent.name}/{path.name}"
        found[f"tool_output.{name}"] = str(path)
    if extra.get("env_csv"):
        found["env_csv"] = str(extra["env_csv"])
    return found


def _target_properties(extra: Mapping[str, Any]) -> dict[str, str]:
    """A target's own JUnit properties (``report_properties``, e.g. SLURM's ``node_check.*``)."""
    found = extra.get("report_properties")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}


def failed_result(card: ModelCard, *, phase: str, reason: str, image: ImageRef | None = None, context: Any,
                  gpus: tuple[int, ...] = (), nnodes: int = 1, deployment_type: str = "local",
                  launcher: str = "", log_path: str = "", log_tail: str = "") -> ModelResult:
    """A FAILURE result for a model that never ran to judgement (build failure, setup error)."""
    rows = build_rows(card, [], status=FAILURE, image=image, context=context, gpus=gpus, nnodes=nnodes,
                      deployment_type=deployment_type, launcher=launcher)
    return ModelResult(model=card.name, status=FAILURE, phase=phase, reason=reason, rows=rows,
                       log_path=log_path, log_tail=log_tail, image=image.name if image else "",
                       gpus=tuple(gpus), build_duration=image.build_duration if image else 0.0)


def skipped_result(card: ModelCard, reason: str, context: Any, *, image: ImageRef | None = None,
                   gpus: tuple[int, ...] = ()) -> ModelResult:
    """A SKIPPED result (skip_gpu_arch, not enough GPUs, --mad-skip-run), recorded as madengine does:
    its row carries the ``reason`` column (appended after the 29)."""
    rows = build_rows(card, [], status=SKIPPED, image=image, context=context, gpus=gpus)
    for row in rows:
        row[REASON_COLUMN] = reason
    return ModelResult(model=card.name, status=SKIPPED, reason=reason, rows=rows,
                       image=image.name if image else "", gpus=tuple(gpus),
                       build_duration=image.build_duration if image else 0.0)


def build_rows(card: ModelCard, measurements: list[Measurement], *, status: str, image: ImageRef | None = None,
               context: Any = None, gpus: tuple[int, ...] = (), nnodes: int = 1,
               deployment_type: str = "local", launcher: str = "", test_duration: float | None = None,
               extra: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """perf.csv rows (all 29 columns, in order, then a results CSV's extra columns) for one model run:
    one per measurement.

    No measurement → one row for the card with an empty performance. When the run succeeded, a
    multiple-results row without a performance, or with a NaN or infinite one, is still marked
    FAILURE (madengine sets the status per row). A
    multiple-results CSV's other columns are kept; one named like a perf.csv column replaces the
    common value where its cell is not empty (madengine copies every CSV column over the row).
    """
    common = _common_fields(card, image=image, context=context, gpus=gpus, nnodes=nnodes,
                            deployment_type=deployment_type, launcher=launcher,
                            test_duration=test_duration, extra=extra or {})
    rows = []
    for model, performance, metric, *rest in measurements or [(card.name, "", "")]:
        others: dict[str, str] = rest[0] if rest else {}
        row_status = FAILURE if status == SUCCESS and not (performance and _finite(performance)) else status
        given = {name: value for name, value in others.items() if value or name not in common}
        row = dict(common, **given, model=model, performance=performance, metric=metric, status=row_status)
        ordered = {name: row.get(name, "") for name in PERF_CSV_COLUMNS}
        ordered.update((name, value) for name, value in others.items() if name not in ordered)
        rows.append(ordered)
    return rows


# The last line of the system environment capture that heads a run log (presets/tools/sys_env.sh).
SYS_ENV_END = "==== end of system environment ===="


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The model's last ``lines`` lines of a log (without a trailing newline): the environment
    capture above them left out, terminal control sequences neutralised (``fileio.printable``)."""
    end = text[-(1 << 20):]  # the last MiB holds the tail of any sane log; no copy of it all
    banner = end.rfind(SYS_ENV_END)
    if banner >= 0 and end.find("\n", banner) >= 0:
        end = end[end.find("\n", banner) + 1:]
    return printable("\n".join(end.rstrip("\n").rsplit("\n", lines)[-lines:])) if end.strip() else ""


# --- performance and verdict ---------------------------------------------------------------

def _measure(card: ModelCard, outcome: RunOutcome, log_text: str,
             parse_hook: ParseHook | None) -> tuple[list[Measurement], str, dict[str, str]]:
    """The run's measurements, why there are none (one paragraph), and the aggregation properties.

    Multi-node runs (several node logs or result files) combine the nodes' figures (``aggregate``).
    A job that writes its own results CSV (``extra["job_results_csv"]``: SLURM's slurm_multi) is read
    as a multiple-results card is.
    """
    if card.multiple_results or outcome.extra.get("job_results_csv"):
        try:
            rows, properties = _result_files(card, outcome.result_files)
        except MadError as error:
            return [], error.message, {}
        measurements: list[Measurement] = [(row["model"], row["performance"], row["metric"],
                                            {k: v for k, v in row.items() if k not in _MEASURED}) for row in rows]
        # One row per result: a non-finite row fails alone (build_rows), the run only when no row is finite.
        finite = [m for m in measurements if m[1] and _finite(m[1])]
        return measurements, "" if finite else _non_finite(measurements), properties
    found = parse_hook(card, log_text) if parse_hook else None
    found = found or find_performance(log_text)
    if not found:
        return [], NO_PERFORMANCE, {}
    performance, metric = str(found[0]), str(found[1])
    nodes = [_read(path) for path in outcome.node_logs] if len(outcome.node_logs) > 1 else []
    per_node = [hit for hit in map(find_performance, nodes) if hit and hit[1] == metric]
    combined = aggregate([value for value, _ in per_node], metric)
    value, properties = (performance, {}) if combined is None else (combined.value, combined.properties())
    measurements = [(card.name, value, metric, {})]
    return measurements, _non_finite(measurements), properties


def _non_finite(measurements: list[Measurement]) -> str:
    """Why the measurements cannot be trusted ('' when they can): a NaN or infinite performance."""
    for model, performance, *_ in measurements:
        if performance and not _finite(performance):
            return (f"performance {performance[:40]!r} of {model} is not a finite number (NaN and infinity, "
                    "also from an overflowing exponent, count as failed results, as in madengine)")
    return ""


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return True  # not a number at all: the row's own checks (and madengine) keep it as written


def _result_files(card: ModelCard, files: list[Path]) -> tuple[list[dict[str, str]], dict[str, str]]:
    """One results CSV as is; several (one per node) merged row by row model name, each metric's
    values combined by its rule, the file with the most performance values giving the order."""
    if not files:
        raise missing_results_error(card.multiple_results, card.name)
    parsed, errors = [], []
    for path in files:
        try:
            parsed.append(read_multiple_results(Path(path), card.name))
        except MadError as error:
            errors.append(error)
    if not parsed:
        raise errors[0]
    parsed.sort(key=count_performances, reverse=True)
    if len(parsed) == 1:
        return parsed[0], {}
    merged, properties = [], {}
    for row in parsed[0]:
        same = [other for rows in parsed for other in rows
                if other["model"] == row["model"] and other.get("metric") == row.get("metric")]
        combined = aggregate([other["performance"] for other in same], row.get("metric", ""))
        if combined is not None:
            row = dict(row, performance=combined.value)
            properties.update(combined.properties(f"aggregation.{row['model'].removeprefix(card.name + '_')}"))
        merged.append(row)
    return merged, properties


def _verdict(outcome: RunOutcome, perf_problem: str, error_line: str | None) -> tuple[str, str]:
    """(phase, reason) of the first failure that applies, ('', '') on success."""
    missing = " No performance was reported either." if perf_problem else ""
    if outcome.error:
        return "run", outcome.error
    if outcome.timed_out:
        limit = outcome.timeout if outcome.timeout else round(outcome.duration)
        return "timeout", f"timed out after {limit} s (the model's timeout; --mad-timeout overrides it)."
    if outcome.exit_code != 0:
        code = "no exit code" if outcome.exit_code is None else f"exit code {outcome.exit_code}"
        return "run", f"the model script ended with {code}.{missing}"
    if error_line is not None:
        return "sanity", (f"error pattern in the log: {_shorten(error_line)!r} (context "
                          f"log_error_benign_patterns / log_error_pattern_scan: false tune the scan).")
    if perf_problem:
        return "sanity", perf_problem
    return "", ""


def _shorten(line: str) -> str:
    return line if len(line) <= MAX_REASON_LINE else line[:MAX_REASON_LINE] + "..."


# --- rows ----------------------------------------------------------------------------------

def _common_fields(card: ModelCard, *, image: ImageRef | None, context: Any, gpus: tuple[int, ...],
                   nnodes: int, deployment_type: str, launcher: str, test_duration: float | None,
                   extra: Mapping[str, Any]) -> dict[str, str]:
    per_node = len(gpus) if gpus else card.n_gpus
    nnodes = nnodes if nnodes > 1 else card_nnodes(card)
    total = per_node * nnodes if nnodes > 1 and per_node > 0 else per_node
    return {
        "n_gpus": str(total),
        "nnodes": str(nnodes),
        "gpus_per_node": str(per_node),
        "training_precision": card.training_precision,
        "pipeline": os.environ.get("pipeline", ""),  # madengine: the CI's ``pipeline`` variable
        "args": card.full_args,
        "tags": ",".join(card.tags),
        "docker_file": image.dockerfile if image else "",
        "base_docker": image.base_docker if image else "",
        "docker_sha": image.docker_sha if image else "",
        "docker_image": image.name if image else "",
        "git_commit": str(extra.get("git_commit") or _ctx(context, "git_commit")),
        "machine_name": _ctx(context, "machine_name") or platform.node(),
        "deployment_type": deployment_type,
        "launcher": run_launcher(launcher, deployment_type, context, card),
        "gpu_architecture": _gpu_architecture(context),
        "relative_change": "",
        "build_duration": _seconds(image.build_duration) if image else "",
        "test_duration": _seconds(test_duration) if test_duration is not None else "",
        "dataname": card.data,
        **{name: str(extra.get(name, "")) for name in _DATA_FIELDS},
        "build_number": os.environ.get("BUILD_NUMBER") or "0",
        "additional_docker_run_options": card.additional_docker_run_options,
    }


def card_nnodes(card: ModelCard) -> int:
    """The card's own ``nnodes`` (madengine's last fallback for the perf row's node count,
    ``container_runner.py:create_run_details_dict``); 1 when absent or not a positive whole number."""
    try:
        value = int(str((getattr(card, "raw", None) or {}).get("nnodes", 1)).strip())
    except ValueError:
        return 1
    return value if value >= 1 else 1


def run_launcher(launcher: str, deployment_type: str, context: Any, card: ModelCard) -> str:
    """The perf.csv ``launcher``: the run's own, else the context's or the card's
    ``distributed.launcher``, else ``MAD_LAUNCHER``, else the deployment's default (``docker``
    locally; ``MAD_LAUNCHER_TYPE`` or ``torchrun`` on SLURM) — madengine's order."""
    if launcher:
        return launcher
    for distributed in (_as_mapping(context).get("distributed"), getattr(card, "distributed", None)):
        if isinstance(distributed, Mapping) and distributed.get("launcher"):
            return str(distributed["launcher"])
    if os.environ.get("MAD_LAUNCHER"):
        return os.environ["MAD_LAUNCHER"]
    if deployment_type == "slurm":
        return os.environ.get("MAD_LAUNCHER_TYPE") or DEFAULT_LAUNCHERS["slurm"]
    return DEFAULT_LAUNCHERS.get(deployment_type, "")


def _seconds(value: float) -> str:
    return f"{value:.2f}"


def _as_mapping(context: Any) -> Mapping[str, Any]:
    if context is None:
        return {}
    if isinstance(context, Mapping):
        return context
    for attribute in ("as_dict", "to_dict"):
        if callable(getattr(context, attribute, None)):
            return getattr(context, attribute)()
    data = getattr(context, "data", None)
    return data if isinstance(data, Mapping) else {}


def _ctx(context: Any, key: str) -> str:
    value = _as_mapping(context).get(key)
    return "" if value is None else str(value)


def _gpu_architecture(context: Any) -> str:
    data = _as_mapping(context)
    env = data.get("docker_env_vars") or {}
    return str(data.get("gpu_architecture") or env.get("MAD_SYSTEM_GPU_ARCHITECTURE") or "")


# --- logs ----------------------------------------------------------------------------------

def _read(path: Path | str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _join_logs(main_log: str, outcome: RunOutcome) -> str:
    """The main log followed by any per-node logs (multi-node runs) not identical to it."""
    others = [Path(p) for p in outcome.node_logs if Path(p) != Path(outcome.log_path)]
    if not others:
        return main_log
    return "\n".join([main_log, *(_read(path) for path in others)])
