"""Where a session's results go: the built-in sinks (perf.csv, perf_entry.*, perf_super.*, JUnit,
the summary and its JSON twin, the history) and those plugins add (``pytest_madengine_make_sinks``),
behind one recorder; and the command line as files that stay may show it (secrets redacted)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from .results.recorder import Recorder
from .results.sinks import ResultSink
from .settings import Settings


def make_recorder(config: pytest.Config, settings: Settings, history: ResultSink | None) -> Recorder:
    """The controller's recorder: built-in sinks, then the plugins' (``finish`` lines in that order)."""
    from .results.sinks.entries import PerfEntrySink
    from .results.sinks.junit import JUnitSink
    from .results.sinks.perfcsv import PerfCsvSink
    from .results.sinks.summary import SummarySink
    from .results.sinks.summaryjson import SummaryJsonSink
    from .results.sinks.superset import PerfSuperSink

    xmlpath = getattr(config.option, "xmlpath", None)
    width = config.get_terminal_writer().fullwidth
    junit = JUnitSink(Path(xmlpath) if xmlpath else None, package=settings.package.name,
                      family=str(config.getini("junit_family") or "xunit2"))
    sinks: list[ResultSink]
    if settings.build_only:  # builds append nothing to perf.csv: the last run's entry stays
        sinks = [SummarySink(width, manifest=settings.manifest_output), junit]
    else:
        results_dir = settings.perf_csv.parent  # madengine writes them all in one directory
        sinks = [SummarySink(width), PerfCsvSink(settings.perf_csv), PerfEntrySink(results_dir),
                 PerfSuperSink(results_dir), junit]
        if history is not None:
            sinks.append(history)
    if settings.summary_output is not None:
        sinks.append(SummaryJsonSink(settings.summary_output, build_only=settings.build_only))
    for extra in config.hook.pytest_madengine_make_sinks(config=config, settings=settings):
        sinks.extend(extra)
    return Recorder(sinks, on_recorded=lambda result: config.hook.pytest_madengine_result_recorded(
        config=config, result=result))


def public_args(config: pytest.Config, context: Mapping[str, object]) -> tuple[str, ...]:
    """The command line without the context's (and host's) secret values, for files that stay."""
    from .workload.secrets import redact, secret_values

    hidden = secret_values(context, os.environ)
    return tuple(redact(str(arg), hidden) for arg in config.invocation_params.args)
