"""What ``pytest --help`` says about the ``--mad-*`` options and their ini twins: readable metavars
(DIR, FILE, N, S, PCT) and typed ini keys, whose malformed values are usage errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_madengine.settings import METAVARS, OPTIONS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mad-hub"


def test_every_valued_option_has_a_metavar() -> None:
    valued = {opt.name for opt in OPTIONS if opt.kind != "bool"}
    assert valued == set(METAVARS)


def test_help_shows_metavars_and_ini_types(pytester: pytest.Pytester) -> None:
    out = pytester.runpytest("--help").stdout.str()
    for shown in ("--mad-package=DIR", "--mad-context-file=FILE", "--mad-timeout=S", "--mad-repeat=N",
                  "--mad-max-cv=PCT", "mad_timeout (int):", "mad_repeat (int):", "mad_build_only (bool):"):
        assert shown in out, shown


def test_a_malformed_int_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    shutil.copytree(EXAMPLE, pytester.path / "hub")
    pytester.makeini("[pytest]\nmad_timeout = soon\n")
    result = pytester.runpytest_subprocess("--mad-package", "hub", "--mad-tags", "dummy", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ini key mad_timeout in " in result.stderr.str() and "soon" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
