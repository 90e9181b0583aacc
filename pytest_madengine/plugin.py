"""pytest entry point: options, hook specs, and the MAD session when the plugin is active.

Kept thin and cheap to import: everything heavy is imported only once a ``--mad-*`` selection
option (or the ``mad_package`` ini value) switches the plugin on.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import pytest

from . import keys as _keys  # noqa: F401  (stash keys must outlive module reloads)
from . import settings as _settings

if TYPE_CHECKING:
    from .targets.base import Target, TargetSettings


def pytest_addoption(parser: pytest.Parser) -> None:
    from .targets.builtins import builtin_options

    _settings.add_options(parser, builtin_options())


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, object, object]:
    """A SLURM or Kubernetes session without ``-n`` gets xdist workers so its jobs run side by side.

    A wrapper, because pytest-xdist's own (tryfirst) cmdline_main turns ``numprocesses`` into
    workers and must see the value; plugin registration order would not guarantee that.
    """
    if _settings.is_active(config):
        from .xdist import queued_job_workers

        workers = queued_job_workers(config)
        if workers:
            config.option.numprocesses = workers
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """Collect the package's anchor file (its root models.json) so pytest loads its conftest.py."""
    if not _settings.is_active(early_config, early_config.known_args_namespace):
        return
    from .items import add_anchor_arg

    add_anchor_arg(early_config, args)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _settings.is_active(config):
        _settings.check_inert(config)
        return
    from . import fixtures
    from .items import ItemHooks
    from .session import start_session

    session = start_session(config)
    config.pluginmanager.register(ItemHooks(config), "madengine-items")
    config.pluginmanager.register(fixtures, "madengine-fixtures")
    if not session.is_worker:
        from .htmlreport import register

        register(config)
    if not session.is_worker and config.pluginmanager.hasplugin("xdist"):
        from .xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(config, demand=session.gpu_demand,
                                                 session_dir=lambda: session.session_dir,
                                                 pool=lambda: session.gpu_allocator.pool), "madengine-xdist")


@pytest.hookimpl(trylast=True)
def pytest_madengine_make_target(name: str, settings: TargetSettings) -> Target | None:
    """The built-in targets (``targets.builtins``), after any conftest's or plugin's own."""
    from .targets.builtins import builtin_target

    return builtin_target(settings)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker per GPU of the pool (asked before pytest_configure runs)."""
    if not _settings.is_active(config):
        return None
    from .xdist import auto_num_workers

    return auto_num_workers(config)
