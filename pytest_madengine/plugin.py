"""pytest entry point: options, hook specs, and the MAD session when the plugin is active.

Kept thin and cheap to import: everything heavy is imported only once a ``--mad-*`` selection
option (or the ``mad_package`` ini value) switches the plugin on.
"""
from __future__ import annotations

from collections.abc import Generator

import pytest

from . import keys as _keys  # noqa: F401  (stash keys must outlive module reloads)
from . import settings as _settings


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    """A SLURM session without ``-n`` gets xdist workers so its jobs queue side by side.

    A wrapper, because pytest-xdist's own (tryfirst) cmdline_main turns ``numprocesses`` into
    workers and must see the value; plugin registration order would not guarantee that.
    """
    if _settings.is_active(config):
        from .xdist import slurm_job_workers

        workers = slurm_job_workers(config)
        if workers:
            config.option.numprocesses = workers
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _settings.is_active(config):
        return
    from .session import start_session

    start_session(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker per GPU of the pool (asked before pytest_configure runs)."""
    if not _settings.is_active(config):
        return None
    from .xdist import auto_num_workers

    return auto_num_workers(config)
