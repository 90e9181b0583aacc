"""The active MAD session: the facts every process shares, its target, and recording results.

Knows no target by name: the target comes from the ``pytest_madengine_make_target`` hook and
is driven only through ``targets.base.Target``. Collection lives in ``items``, fixtures and
test bodies in ``fixtures``; results leave through the recorder's sinks (``results.sinks``).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import pytest

from . import settings as _settings
from .cards import ModelCard
from .context import Context, build_context, card_overrides
from .errors import MadError
from .fileio import disambiguated, safe_name
from .images.supply import ImageSupply, image_name_suffixes
from .keys import SESSION_KEY
from .parallel.gpus import GpuAllocator, GpuPool
from .records import ModelResult
from .results.recorder import Recorder
from .results.sinks import ResultSink
from .selection import ItemSpec, plan_items, select
from .targets.base import Target, TargetSettings
from .targets.registry import BUILTIN_TARGETS, infer_target
from .workload.known_keys import MadKeyWarning, cards_unknown, context_unknown, key_warnings
from .workload.rundirs import sweep_stale_run_dirs

if TYPE_CHECKING:  # loaded only when a session uses them
    from .history.checks import PerformanceChecks
    from .history.sink import HistorySink


def start_session(config: pytest.Config) -> MadSession:
    """Create the session of this process and register it as a plugin."""
    try:
        settings = _settings.from_config(config)
    except MadError as exc:
        raise pytest.UsageError(exc.message) from None
    session = MadSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "madengine-session")
    return session


def get_session(config: pytest.Config) -> MadSession:
    session = config.stash[SESSION_KEY]
    assert isinstance(session, MadSession)
    return session


def usage_error(exc: MadError) -> pytest.UsageError:
    return pytest.UsageError(exc.message)


def _interrupt(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not break the cleanup
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


class MadSession:
    """Per-process state of an active session. Workers get the controller's dir and id."""

    def __init__(self, config: pytest.Config, settings: _settings.Settings) -> None:
        self.config = config
        self.settings = settings
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        if workerinput and workerinput.get("mad_session_dir"):
            self.session_dir = Path(workerinput["mad_session_dir"])
        else:
            self.session_dir = Path(tempfile.mkdtemp(prefix=f"pytest-madengine-{uuid.uuid4().hex[:10]}-"))
        self.owns_session_dir = not self.is_worker
        self.session_id = self.session_dir.name.split("-")[2]
        self._target: Target | None = None
        self._warned_keys: set[tuple[str, str]] = set()
        self._key_warnings: list[MadKeyWarning] = []  # issued where pytest records warnings (see _flush_warnings)
        self._recorded: set[str] = set()  # node ids with a recorded result
        self._previous_sigterm: signal.Handlers | Callable[[int, FrameType | None], object] | int | None = None

    # --- lazily computed session facts -------------------------------------------------
    @cached_property
    def context(self) -> Context:
        try:
            context = build_context(context_file=self.settings.context_file,
                                    context_text=self.settings.context,
                                    gpus_option=self.settings.gpus)
        except MadError as exc:
            raise usage_error(exc) from None
        self.config.hook.pytest_madengine_adjust_context(config=self.config, context=context.data)
        image = context.get("MAD_CONTAINER_IMAGE")
        if image and not self.settings.use_image:  # madengine: run that image, build nothing
            self.settings = replace(self.settings, use_image=str(image))
        if not self.is_worker:
            given = [self.settings.context_file and f"--mad-context-file {self.settings.context_file}",
                     self.settings.context and "--mad-context"]
            where = " / ".join(g for g in given if g) or "context"
            self._key_warnings += key_warnings(context_unknown(context.data, where), self._warned_keys)
        return context

    @cached_property
    def anchor(self) -> Path:
        """The file collected as the package's registry (see ``Settings.anchor``), resolved."""
        return self.settings.anchor.resolve()

    @cached_property
    def target_name(self) -> str:
        return infer_target(self.settings.target, self.context.data)

    @property
    def target(self) -> Target:
        """The session's target, created on first use through ``pytest_madengine_make_target``."""
        if self._target is None:
            settings = TargetSettings(name=self.target_name, session_id=self.session_id,
                                      session_dir=self.session_dir, settings=self.settings,
                                      context=self.context, controller=not self.is_worker)
            try:
                target = self.config.hook.pytest_madengine_make_target(name=self.target_name, settings=settings)
            except MadError as exc:
                raise usage_error(exc) from None
            if target is None:
                raise pytest.UsageError(
                    f"--mad-target: unknown target {self.target_name!r}. Fix: use one of "
                    f"{', '.join(BUILTIN_TARGETS)} (or leave it out to infer it from the context); a "
                    "conftest.py or plugin can add a target with the pytest_madengine_make_target hook.")
            self._target = target
        return self._target

    @cached_property
    def images(self) -> ImageSupply:
        context = self.context  # first: MAD_CONTAINER_IMAGE may set the settings' use_image
        return ImageSupply(self.settings, context, self.session_dir)

    @cached_property
    def gpu_allocator(self) -> GpuAllocator:
        pool = GpuPool.resolve(gpus_option=self.settings.gpus,
                               context_gpus=self.context.get("docker_gpus"),
                               env=os.environ, detected_count=self.context.host.gpu_count)
        # A killed worker's GPUs go to the next model only after what it ran is gone.
        return GpuAllocator(self.session_dir, pool, on_reclaim=self._reclaim)

    def _reclaim(self, hold: dict[str, object]) -> None:
        self.target.sweep_stale()

    @cached_property
    def cards(self) -> list[ModelCard]:
        """The selected cards (with selection parameters), in a stable order."""
        tags = self.settings.tags or self._default_tags()
        try:
            selected = select(self.all_cards, tags)
        except MadError as exc:
            raise usage_error(exc) from None
        if not self.is_worker:
            self._key_warnings += key_warnings(cards_unknown((c.raw, c.source) for c in selected), self._warned_keys)
        overrides = card_overrides(self.context.data)
        return [replace(card, **overrides) for card in selected] if overrides else selected

    @cached_property
    def all_cards(self) -> list[ModelCard]:
        try:
            if self.images.manifest is not None:
                return list(self.images.manifest.cards())
            from .discovery import load_package

            package = load_package(self.settings.package, context=self.context.to_json(),
                                   timeout=self.settings.discover_timeout,
                                   cache_dir=self.session_dir / "dynamic")
            return list(package.cards)
        except MadError as exc:
            raise usage_error(exc) from None

    def _default_tags(self) -> tuple[str, ...]:
        try:
            return tuple(self.images.batch_entries) or ("all",)
        except MadError as exc:
            raise usage_error(exc) from None

    @cached_property
    def specs(self) -> list[ItemSpec]:
        self.images.name_suffixes = image_name_suffixes(card.name for card in self.cards)
        return plan_items(self.cards, self.images.dockerfile_variants)

    @cached_property
    def log_stems(self) -> dict[str, str]:
        """Item name → the stem of its log file; names that map to one file are told apart."""
        return disambiguated((spec.name for spec in self.specs), safe_name)

    def log_stem(self, item_name: str) -> str:
        return self.log_stems.get(item_name) or safe_name(item_name)

    @cached_property
    def _demand(self) -> dict[str, int]:
        base = self.settings.anchor_nodeid(self.config.rootpath)
        return {f"{base}::{spec.name}": spec.card.n_gpus for spec in self.specs}

    def gpu_demand(self, nodeid: str) -> int:
        """GPUs a test id needs (-1 = whole node), for the xdist scheduler on the controller."""
        return self._demand.get(nodeid, 0)

    @cached_property
    def performance_checks(self) -> PerformanceChecks:
        """References and history baseline of this process (usage error for a bad file or spec)."""
        from .history.checks import PerformanceChecks
        from .history.spec import parse_compare_spec
        from .results.reference_file import load_references

        settings = self.settings
        try:
            references = load_references(settings.references) if settings.references else None
            compare = parse_compare_spec(settings.compare) if settings.compare else None
        except MadError as exc:
            raise usage_error(exc) from None
        return PerformanceChecks(references, settings.history, compare, settings.fail_on_regression, self.session_id)

    @cached_property
    def history_sink(self) -> HistorySink | None:
        """The controller's writer of the results history (None: --mad-history none, build-only)."""
        if self.settings.history is None or self.settings.build_only:
            return None
        from .history.sink import HistorySink
        from .history.store import SessionInfo
        from .workload.gitclone import head_commit

        info = SessionInfo(id=self.session_id, started=time.time(), host=socket.gethostname(), target=self.target_name,
                           git_commit=head_commit(self.settings.package), gpu_vendor=self.context.gpu_vendor,
                           gpu_architecture=self.context.gpu_architecture,
                           gpu_count=len(self.gpu_allocator.pool.ids),
                           pytest_args=self._public_args())
        try:
            return HistorySink(self.settings.history, info)
        except MadError as exc:
            raise usage_error(exc) from None

    def _public_args(self) -> tuple[str, ...]:
        """The command line without the context's (and host's) secret values, for files that stay."""
        from .workload.secrets import redact, secret_values

        hidden = secret_values(self.context.data, os.environ)
        return tuple(redact(str(arg), hidden) for arg in self.config.invocation_params.args)

    @cached_property
    def recorder(self) -> Recorder:
        from .results.sinks.entries import PerfEntrySink
        from .results.sinks.junit import JUnitSink
        from .results.sinks.perfcsv import PerfCsvSink
        from .results.sinks.summary import SummarySink
        from .results.sinks.superset import PerfSuperSink

        xmlpath = getattr(self.config.option, "xmlpath", None)
        width = self.config.get_terminal_writer().fullwidth
        junit = JUnitSink(Path(xmlpath) if xmlpath else None)
        sinks: list[ResultSink]
        if self.settings.build_only:  # builds append nothing to perf.csv: the last run's entry stays
            sinks = [SummarySink(width, manifest=self.settings.manifest_output), junit]
        else:
            results_dir = self.settings.perf_csv.parent  # madengine writes them all in one directory
            sinks = [SummarySink(width), PerfCsvSink(self.settings.perf_csv), PerfEntrySink(results_dir),
                     PerfSuperSink(results_dir), junit]
            if self.history_sink is not None:
                sinks.append(self.history_sink)
        return Recorder(sinks, on_recorded=lambda result: self.config.hook.pytest_madengine_result_recorded(
            config=self.config, result=result))

    # --- pytest hooks ---------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._handle_sigterm()
        if self.is_worker:
            return
        _ = self.specs  # load (and run dynamic scripts) once, before xdist workers start
        _ = self.target  # an unknown target is a usage error before anything is built
        _ = self.performance_checks  # so are bad references and --mad-compare values
        self._check_inputs()
        if not self.config.option.collectonly:
            _ = self.recorder  # opens the history: an unusable file is a usage error too
            self._check_outputs()
            try:
                self.target.sweep_stale()
            except MadError as exc:  # e.g. no kubeconfig: the session cannot run anything
                raise usage_error(exc) from None
            sweep_stale_run_dirs(Path(self.settings.log_dir).absolute() / "runs")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._flush_warnings()

    def _flush_warnings(self) -> None:
        """Unknown-key warnings, once each, from a hook pytest records warnings in (collection or
        session finish: an xdist controller collects nothing)."""
        pending, self._key_warnings = self._key_warnings, []
        for warning in pending:
            warnings.warn(warning, stacklevel=1)

    def _check_inputs(self) -> None:
        """What can be known before any build: the GPU list, the registry, image names (usage errors)."""
        from .images.dockerfiles import check_image_name
        from .images.registry import check_registry

        try:
            _ = self.gpu_allocator.pool
            if self.settings.registry:
                check_registry(self.settings.registry)
            if not (self.settings.use_image or self.settings.manifest):
                for card in self.cards:
                    check_image_name(card)
        except MadError as exc:
            raise usage_error(exc) from None

    def _check_outputs(self) -> None:
        """perf.csv must be writable before any model runs (a read-only or full filesystem)."""
        if self.settings.build_only:
            return
        from .results.sinks.perfcsv import check_writable

        problem = check_writable(self.settings.perf_csv)
        if problem:
            raise pytest.UsageError(f"--mad-perf-csv {self.settings.perf_csv}: {problem}. Fix: free space there "
                                    "or point --mad-perf-csv at a writable file.")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        data = getattr(report, "mad_result", None)
        result: ModelResult | None
        if data:
            result = ModelResult.from_json(data)
        elif report.failed and report.when in ("setup", "call", "???"):  # "???": xdist's crashed worker
            result = self._lost_result(report)
        else:
            return
        if result is not None:
            result.nodeid = report.nodeid
            self._recorded.add(report.nodeid)
            self.recorder.record(result)

    def _lost_result(self, report: pytest.TestReport) -> ModelResult | None:
        """A FAILURE for a model whose run ended without a result (its worker was killed, a
        fixture raised); None for other tests and for models already recorded."""
        card = self._cards_by_nodeid.get(report.nodeid)
        if card is None or report.nodeid in self._recorded:
            return None
        from .results.judge import failed_result

        cause = str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else "no report"
        if report.when == "???":
            reason = f"the pytest-xdist worker running it died before reporting ({cause})"
        else:
            reason = f"the run ended without a result in its {report.when} phase ({cause})"
        return failed_result(card, phase="run", reason=reason, context=self.context.data)

    @cached_property
    def _cards_by_nodeid(self) -> dict[str, ModelCard]:
        base = self.settings.anchor_nodeid(self.config.rootpath)
        return {f"{base}::{spec.name}": spec.card for spec in self.specs}

    def _handle_sigterm(self) -> None:
        """SIGTERM (CI runners, ``timeout``, SLURM's scancel) ends the session as Ctrl-C does:
        containers and jobs are removed and the results so far are written. Restored at unconfigure."""
        if threading.current_thread() is threading.main_thread() and self._previous_sigterm is None:
            self._previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._flush_warnings()
        if self._target is not None:
            self._target.cancel_all()
            self._target.close()
        if not self.is_worker:
            self._summary_lines = self.recorder.finish()

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        lines = getattr(self, "_summary_lines", None)
        if self.is_worker or not lines:
            return
        terminalreporter.write_sep("=", "MAD results")
        for line in lines:
            terminalreporter.write_line(line)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None
        if self.owns_session_dir:
            shutil.rmtree(self.session_dir, ignore_errors=True)
