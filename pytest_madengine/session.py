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

from .cards import ModelCard
from .context import Context, card_overrides
from .errors import MadError, WarnOnce
from .fileio import disambiguated, safe_name
from .images.progress import Progress
from .images.supply import ImageSupply, image_name_suffixes
from .facts import EarlyFacts, early_facts
from .startchecks import check_inputs, check_outputs, preflight
from .keys import SESSION_KEY, TARGET_KEY
from .parallel.gpus import GpuAllocator, GpuPool
from .records import ModelResult
from .results.recorder import Recorder
from .selection import ItemSpec, plan_items, select
from .targets.base import Target, TargetSettings
from .targets.builtins import BUILTIN_TARGETS, infer_target
from .workload.known_keys import MadKeyWarning, cards_unknown, context_unknown, key_warnings
from .workload.rundirs import sweep_stale_run_dirs
from .xdist import terminal_line

if TYPE_CHECKING:  # loaded only when a session uses them
    from .discovery.package import CardError
    from .history.checks import PerformanceChecks
    from .history.sink import HistorySink
    from .results.sinks import ResultSink


def start_session(config: pytest.Config) -> MadSession:
    """Create the session of this process and register it as a plugin."""
    session = MadSession(config, early_facts(config))
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

    def __init__(self, config: pytest.Config, facts: EarlyFacts) -> None:
        self.config = config
        self.settings = facts.settings
        self._facts = facts
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        if workerinput and workerinput.get("mad_session_dir"):
            self.session_dir = Path(workerinput["mad_session_dir"])
        else:
            self.session_dir = Path(tempfile.mkdtemp(prefix=f"pytest-madengine-{uuid.uuid4().hex[:10]}-"))
        self.owns_session_dir = not self.is_worker
        self.session_id = self.session_dir.name.split("-")[2]
        self._target: Target | None = None
        self._warned_keys = WarnOnce()
        self._key_warnings: list[MadKeyWarning] = []  # issued where pytest records warnings (see _flush_warnings)
        self._recorded: set[str] = set()  # node ids with a recorded result
        self.card_errors: list[CardError] = []  # bad registry entries: collection errors of their own
        self._previous_sigterm: signal.Handlers | Callable[[int, FrameType | None], object] | int | None = None

    # --- lazily computed session facts -------------------------------------------------
    @cached_property
    def context(self) -> Context:
        context = self._facts.context
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
                target = self.config.hook.pytest_madengine_make_target(name=self.target_name, settings=settings,
                                                                        config=self.config)
            except MadError as exc:
                raise usage_error(exc) from None
            if target is None:
                raise pytest.UsageError(
                    f"--mad-target: unknown target {self.target_name!r}. Fix: use one of "
                    f"{', '.join(BUILTIN_TARGETS)} (or leave it out to infer it from the context); a "
                    "conftest.py or plugin can add a target with the pytest_madengine_make_target hook.")
            self._target = target
            self.config.stash[TARGET_KEY] = target
            for plugin in getattr(target, "pytest_plugins", ()):  # the target's own fixtures
                self.config.pluginmanager.import_plugin(plugin)
        return self._target

    @cached_property
    def images(self) -> ImageSupply:
        supply = ImageSupply(self.settings, self.context, self.session_dir)
        line = terminal_line(self.config)
        supply.progress = Progress(line, live=line if self.settings.live_output else None)
        return supply

    @cached_property
    def gpu_allocator(self) -> GpuAllocator:
        pool = GpuPool.resolve(gpus_option=self.settings.gpus,
                               context_gpus=self.context.get("docker_gpus"),
                               env=os.environ, detected_count=self.context.host.gpu_count)
        # A killed worker's GPUs go to the next model only after what it ran is gone.
        return GpuAllocator(self.session_dir, pool, on_reclaim=self._reclaim,
                            first_wave=self._first_wave(len(pool.ids)))

    def _first_wave(self, pool_size: int) -> int:
        """Requests the first grant waits for: one per xdist worker, at most one per item that
        needs (and can get) GPUs."""
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
        needing = sum(1 for spec in self.specs if spec.card.n_gpus < 0 or 0 < spec.card.n_gpus <= pool_size)
        return max(1, min(workers, needing))

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
                                   cache_dir=self.session_dir / "dynamic", card_errors=True)
            self.card_errors = list(package.errors)
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
        checks = PerformanceChecks(references, settings.history, compare, settings.fail_on_regression, self.session_id)
        if not self.is_worker:
            try:
                checks.check_baseline_session()
            except MadError as exc:
                raise usage_error(exc) from None
        return checks

    @cached_property
    def history_sink(self) -> ResultSink | None:
        """The controller's writer of the results history (None: --mad-history none, build-only).

        A history that will open cleanly is opened at the first result, off the path to the first
        model (SQLAlchemy's import), unless --mad-compare reads it anyway; any other is opened now,
        so an unusable one is said up front."""
        if self.settings.history is None or self.settings.build_only:
            return None
        from .history.early import opens_cleanly

        started = time.time()
        # --mad-compare reads the history for every result, its baselines from the session's own file
        if self.settings.compare is None and opens_cleanly(self.settings.history):
            from .results.sinks.deferred import DeferredSink

            return DeferredSink(lambda: self._open_history(started), label="history")
        try:
            return self._open_history(started)
        except MadError as exc:
            if self.settings.history_named:
                raise usage_error(exc) from None
            # The default history is data, not a reason to stop the models: one warning, no history.
            self.config.issue_config_time_warning(
                pytest.PytestWarning(f"history not written: {exc.message}"), stacklevel=2)
            return None

    def _open_history(self, started: float) -> HistorySink:
        """The history sink, its session stored (MadError when the history cannot be used)."""
        from .history.sink import HistorySink, ci_pipeline
        from .history.store import SessionInfo
        from .outputs import public_args
        from .workload.gitclone import head_commit

        info = SessionInfo(id=self.session_id, started=started, host=socket.gethostname(), target=self.target_name,
                           git_commit=head_commit(self.settings.package), gpu_vendor=self.context.gpu_vendor,
                           gpu_architecture=self.context.gpu_architecture,
                           gpu_count=len(self.gpu_allocator.pool.ids),
                           pytest_args=public_args(self.config, self.context.data), pipeline=ci_pipeline(os.environ))
        return HistorySink(self.settings.history, info)

    @cached_property
    def recorder(self) -> Recorder:
        from .outputs import make_recorder

        return make_recorder(self.config, self.settings, None if self.settings.build_only else self.history_sink)

    # --- pytest hooks ---------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._handle_sigterm()
        # The target first (cheap, no connection): an unknown one is a usage error before anything is
        # built, and on every process its fixtures (pytest_plugins) must exist before collection.
        _ = self.target
        if self.is_worker:
            return
        _ = self.specs  # load (and run dynamic scripts) once, before xdist workers start
        _ = self.performance_checks  # so are bad references and --mad-compare values
        try:
            check_inputs(self.settings, self.cards, self.gpu_allocator)
            if not self.config.option.collectonly:
                check_outputs(self.settings)
                preflight(self.target, self.settings)
        except MadError as exc:
            raise usage_error(exc) from None
        if not self.config.option.collectonly:
            _ = self.recorder  # opens the history: an unusable file is a usage error too
            try:
                self.target.sweep_stale()
            except MadError as exc:  # e.g. no kubeconfig: the session cannot run anything
                raise usage_error(exc) from None
            sweep_stale_run_dirs(Path(self.settings.log_dir).absolute() / "runs")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._flush_warnings()

    def warn_once(self, key: str, where: str, why: str) -> None:
        """A ``MadKeyWarning`` ``"<where>: key '<key>' <why>"``, once per key and place per process."""
        self._warned_keys.warn((key, where), MadKeyWarning(f"{where}: key {key!r} {why}"))

    def _flush_warnings(self) -> None:
        """Unknown-key warnings, once each, from a hook pytest records warnings in (collection or
        session finish: an xdist controller collects nothing)."""
        pending, self._key_warnings = self._key_warnings, []
        for warning in pending:
            warnings.warn(warning, stacklevel=1)

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
        if not self.is_worker and not self.config.option.collectonly:  # --collect-only writes nothing
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
