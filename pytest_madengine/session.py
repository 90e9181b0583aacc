"""The active MAD session: loads the package, creates items, records every result."""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from . import settings as _settings
from .cards import ModelCard
from .collect import MadItem, build_items, package_nodeids, plan_items, register_markers
from .errors import MadError
from .keys import RECORDED_KEY, RESULT_KEY, SESSION_KEY
from .recorder import Recorder
from .records import ModelResult


def start_session(config: pytest.Config) -> MadSession:
    try:
        settings = _settings.from_config(config)
    except MadError as exc:
        raise pytest.UsageError(exc.message) from None
    session = MadSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "madengine-session")
    config.pluginmanager.register(importlib.import_module("pytest_madengine.fixtures"), "madengine-fixtures")
    if not session.is_worker and config.pluginmanager.hasplugin("xdist"):
        from .xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(config, demand=session.gpu_demand), "madengine-xdist")
    return session


def get_session(config: pytest.Config) -> MadSession:
    return config.stash[SESSION_KEY]


def usage_error(exc: MadError) -> pytest.UsageError:
    return pytest.UsageError(exc.message)


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
        self.recorder = Recorder(settings)
        self._target: Any = None
        self._demand: dict[str, int] | None = None

    # --- lazily computed session facts -------------------------------------------------
    @cached_property
    def context(self) -> Any:
        from .context import build_context

        try:
            context = build_context(context_file=self.settings.context_file,
                                    context_text=self.settings.context,
                                    gpus_option=self.settings.gpus)
        except MadError as exc:
            raise usage_error(exc) from None
        self.config.hook.pytest_madengine_adjust_context(config=self.config, context=context.data)
        return context

    @cached_property
    def target_name(self) -> str:
        from .targets.base import infer_target

        return infer_target(self.settings.target, self.context.data)

    @property
    def target(self) -> Any:
        if self._target is None:
            from .targets.base import get_target

            extra: dict[str, Any] = {}
            if self.target_name == "local":
                from .provision import docker_client

                extra["client"] = docker_client()  # one connection pool per process
                extra["defer_removal"] = True  # cancel_all at session end waits for the removals
            self._target = get_target(self.target_name, session_id=self.session_id,
                                      package_root=self.settings.package, **extra)
        return self._target

    @cached_property
    def manifest(self) -> Any:
        if not self.settings.manifest:
            return None
        from .manifest import load_manifest

        return load_manifest(self.settings.manifest)

    @cached_property
    def gpu_allocator(self) -> Any:
        from .gpus import GpuAllocator, GpuPool

        pool = GpuPool.resolve(gpus_option=self.settings.gpus,
                               context_gpus=self.context.get("docker_gpus"),
                               env=os.environ, detected_count=self.context.host.gpu_count)
        # A killed worker's GPUs go to the next model only after its container is gone.
        on_reclaim = self._remove_stale_containers if self.target_name == "local" else None
        return GpuAllocator(self.session_dir, pool, on_reclaim=on_reclaim and (lambda hold: on_reclaim()))

    @cached_property
    def cards(self) -> list[ModelCard]:
        """The selected cards (with selection parameters), in a stable order."""
        from .selection import select

        all_cards = self._all_cards()
        register_markers(self.config, all_cards)
        tags = self.settings.tags or self._default_tags()
        try:
            return select(all_cards, tags)
        except MadError as exc:
            raise usage_error(exc) from None

    def _all_cards(self) -> list[ModelCard]:
        try:
            if self.manifest is not None:
                return list(self.manifest.cards())
            from .discovery import load_package

            package = load_package(self.settings.package, context=self.context.to_json(),
                                   timeout=self.settings.discover_timeout,
                                   cache_dir=self.session_dir / "dynamic")
            return list(package.cards)
        except MadError as exc:
            raise usage_error(exc) from None

    @cached_property
    def batch_entries(self) -> dict[str, Any]:
        if not self.settings.batch_manifest:
            return {}
        from .manifest import load_batch_manifest

        try:
            return {e.model_name: e for e in load_batch_manifest(self.settings.batch_manifest)}
        except MadError as exc:
            raise usage_error(exc) from None

    @cached_property
    def manifest_writer(self) -> Any:
        from .manifest import ManifestWriter

        return ManifestWriter(self.settings.manifest_output, self.context.to_json(), self.settings.registry)

    def _default_tags(self) -> tuple[str, ...]:
        return tuple(self.batch_entries) or ("all",)

    def dockerfile_variants(self, card: ModelCard) -> list[str]:
        """Package-relative Dockerfiles a card resolves to; [] = decide (or fail) at run time."""
        if self.manifest is not None or self.settings.use_image:
            return []
        from .dockerfiles import resolve_dockerfiles

        try:
            found = resolve_dockerfiles(card, self.settings.package, self.context.data)
        except MadError:
            return []  # listing never fails on Dockerfiles; the run reports the problem
        return [os.path.relpath(path, self.settings.package) for path in found]

    @cached_property
    def specs(self) -> list[Any]:
        return plan_items(self.cards, self.dockerfile_variants)

    def gpu_demand(self, nodeid: str) -> int:
        """GPUs a test id needs (-1 = whole node), for the xdist scheduler on the controller."""
        if self._demand is None:
            _, registry_id = package_nodeids(self.settings.package, self.config.rootpath)
            self._demand = {f"{registry_id}::{spec.name}": spec.card.n_gpus for spec in self.specs}
        return self._demand.get(nodeid, 0)

    @cached_property
    def collect_test_files(self) -> bool:
        """Only paths the user named are collected besides the models: `pytest --mad-tags x`
        in a repository with testpaths runs the models, not the repository's test suite."""
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is not None and "mad_collect_files" in workerinput:
            return bool(workerinput["mad_collect_files"])
        return self.config.args_source == pytest.Config.ArgsSource.ARGS

    # --- pytest hooks ---------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["mad_collect_files"] = self.collect_test_files

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        return None if self.collect_test_files else True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.is_worker:
            _ = self.specs  # load (and run dynamic scripts) once, before xdist workers start
            self._remove_stale_containers()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        self._load_package_conftest()
        from .fixtures import build_model, run_model

        function = build_model if self.settings.build_only else run_model
        items[:0] = build_items(session, self.settings.package, self.specs, function)

    def _load_package_conftest(self) -> None:
        conftest = self.settings.package / "conftest.py"
        if not conftest.is_file():
            return
        pm = self.config.pluginmanager
        try:
            pm._loadconftestmodules(self.settings.package, importmode=self.config.getoption("importmode"),
                                    rootpath=self.config.rootpath,
                                    consider_namespace_packages=self.config.getini("consider_namespace_packages"))
        except TypeError:  # older pytest without consider_namespace_packages
            pm._loadconftestmodules(self.settings.package, self.config.getoption("importmode"),
                                    rootpath=self.config.rootpath)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if not isinstance(item, MadItem) or call.when == "teardown" or item.stash.get(RECORDED_KEY, False):
            return report
        if call.when == "setup" and report.passed:
            return report
        result = item.stash.get(RESULT_KEY, None) or self._result_from_report(item, report)
        self.config.hook.pytest_madengine_process_result(card=item.spec.card, result=result)
        item.stash[RECORDED_KEY] = True
        report.mad_result = result.to_json()
        from .results.junit import junit_properties

        item.user_properties.extend(junit_properties(result))
        return report

    def _result_from_report(self, item: MadItem, report: pytest.TestReport) -> ModelResult:
        from .results.judge import failed_result, skipped_result

        reason = _short_reason(report)
        context = self.context.data
        if report.skipped:
            return skipped_result(item.spec.card, reason, context)
        return failed_result(item.spec.card, phase="setup" if report.when == "setup" else "run",
                             reason=reason, context=context)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "mad_result", None)
        if data and not self.is_worker:
            self.recorder.record(report.nodeid, ModelResult.from_json(data))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._target is not None:
            self._target.cancel_all()
        if self.is_worker:
            return
        self._remove_leftover_containers()
        self.recorder.finish(getattr(self.config.option, "xmlpath", None))

    def _remove_stale_containers(self) -> None:
        """Containers of earlier sessions whose pytest process died (SIGKILL, power loss)."""
        if self.config.option.collectonly or self.target_name != "local":
            return
        from .targets.local import remove_stale_containers

        with contextlib.suppress(Exception):  # no daemon yet: each model reports that clearly when it runs
            remove_stale_containers()

    def _remove_leftover_containers(self) -> None:
        # A backstop for workers that died mid-run; listing alone never talks to Docker.
        if self.config.option.collectonly or self.settings.keep_alive or self.target_name != "local":
            return
        from .targets.local import remove_session_containers

        with contextlib.suppress(Exception):  # the daemon may be gone; nothing of ours can be left then
            remove_session_containers(self.session_id)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_worker:
            self.recorder.print_summary(terminalreporter)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.owns_session_dir:
            shutil.rmtree(self.session_dir, ignore_errors=True)


def _short_reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = str(report.longrepr or "").strip().splitlines()
    return text[-1] if text else "unknown error"
