"""pytest nodes for a MAD package: the registry file as a ``pytest.File``, one item per model.

pytest's "non-python tests" pattern: ``pytest_collect_file`` turns the package's root
``models.json`` into a ``ModelsFile`` whose ``collect()`` yields one ``MadItem`` per selected
card (per Dockerfile variant where a card resolves to several). pytest itself walks to that file,
so the package's conftest.py is loaded by pytest, node ids (``hub/models.json::dummy``)
round-trip through ``--deselect``, ``-k``, ``--lf`` and IDE explorers, and fixtures of the package
conftest apply. Items are ``pytest.Function`` objects bound to the plugin's test bodies so that
the ``mad_*`` fixtures (and a conftest's overrides) reach them.
"""
from __future__ import annotations

from collections.abc import Generator, Iterable
from pathlib import Path

import pytest

from .cards import ModelCard
from .errors import MadError
from .fixtures import build_model, run_model
from .keys import RECORDED_KEY, RESULT_KEY
from .records import ModelResult
from .results.judge import failed_result, skipped_result
from .results.sinks.junit import junit_properties
from .selection import ItemSpec
from .session import get_session


class ModelsFile(pytest.File):
    """The package's model registry (or the build manifest a session runs): its children are the
    selected models, in the session's order."""

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        session = get_session(self.config)
        test_function = build_model if session.settings.build_only else run_model
        marks: dict[str, pytest.MarkDecorator] = {}
        for bad in session.card_errors:
            invalid: InvalidCard = InvalidCard.from_parent(self, name=bad.name)
            invalid.error = bad.error
            yield invalid
        for spec in session.specs:
            item = MadItem.from_parent(self, name=spec.name, callobj=test_function)
            item.spec = spec
            for tag in spec.card.tags:
                mark = marks.get(tag) or marks.setdefault(tag, getattr(pytest.mark, tag))
                item.add_marker(mark)
            yield item


class InvalidCard(pytest.Collector):
    """A registry entry that is no valid card: collecting it fails with its one-paragraph error, so
    pytest interrupts the session naming it (``--continue-on-collection-errors`` runs the others)."""

    error: MadError

    def collect(self) -> Iterable[pytest.Item]:
        raise self.error

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, MadError):
            return f"invalid card {self.name}: {excinfo.value.message}"
        return str(super().repr_failure(excinfo))


class MadItem(pytest.Function):
    """A model run (or build) as a pytest test."""

    spec: ItemSpec

    def reportinfo(self) -> tuple[Path, int, str]:
        return Path(self.spec.card.source), 0, f"MAD model {self.spec.card.name}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> object:  # type: ignore[override]
        if isinstance(excinfo.value, MadError):
            return excinfo.value.message
        return super().repr_failure(excinfo)


def register_markers(config: pytest.Config, cards: Iterable[ModelCard]) -> None:
    """Every card tag becomes a registered marker (``--strict-markers`` and ``-m`` work)."""
    known = {line.split(":")[0].strip() for line in config.getini("markers")}
    for tag in sorted({tag for card in cards for tag in card.tags} - known):
        config.addinivalue_line("markers", f"{tag}: MAD model tag")


def add_anchor_arg(early_config: pytest.Config, args: list[str]) -> None:
    """Make pytest collect the package's anchor file unless a named path already covers it.

    Called from ``pytest_load_initial_conftests`` (the documented place to change ``args``), so
    pytest also loads the package's conftest.py as an initial conftest, from inside the package
    or outside it. Only the models run unless the user named other paths.
    """
    from . import settings as _settings

    namespace = early_config.known_args_namespace
    try:
        anchor = _settings.from_config(early_config, namespace).anchor.resolve()
    except pytest.UsageError:
        return  # the session reports the bad option properly
    if not anchor.is_file():
        return  # discovery explains what is missing
    named = [str(arg) for arg in getattr(namespace, "file_or_dir", None) or []]
    invocation_dir = early_config.invocation_params.dir
    for arg in named:
        path = (invocation_dir / arg.split("::")[0]).resolve()
        if path == anchor or (path.is_dir() and anchor.is_relative_to(path)):
            return
    args.append(str(anchor))
    namespace.file_or_dir = [*named, str(anchor)]


class ItemHooks:
    """Collection and reporting hooks of the models (registered when the plugin is active)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> ModelsFile | None:
        session = get_session(self.config)
        if file_path != session.anchor:
            return None
        register_markers(self.config, session.all_cards)
        registry: ModelsFile = ModelsFile.from_parent(parent, path=file_path)
        return registry

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if not isinstance(item, MadItem) or call.when == "teardown" or item.stash.get(RECORDED_KEY, False):
            return report
        if call.when == "setup" and report.passed:
            return report
        result = item.stash.get(RESULT_KEY, None) or _result_from_report(item, report)
        self.config.hook.pytest_madengine_process_result(card=item.spec.card, result=result)
        item.stash[RECORDED_KEY] = True
        report.mad_result = result.to_json()  # type: ignore[attr-defined]
        item.user_properties.extend(junit_properties(result))
        return report


def _result_from_report(item: MadItem, report: pytest.TestReport) -> ModelResult:
    reason = _short_reason(report)
    context = get_session(item.config).context.data
    if report.skipped:
        return skipped_result(item.spec.card, reason, context)
    return failed_result(item.spec.card, phase="setup" if report.when == "setup" else "run",
                         reason=reason, context=context)


def _short_reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    text = str(report.longrepr or "").strip().splitlines()
    return text[-1] if text else "unknown error"
