"""The history / references / compare / repeat options: defaults, ini twins, validation errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_madengine import settings


def settings_of(pytester: pytest.Pytester, *args: str) -> settings.Settings:
    return settings.from_config(pytester.parseconfig("--mad-package", str(pytester.path), *args))


def test_defaults(pytester: pytest.Pytester) -> None:
    values = settings_of(pytester)
    assert values.history == pytester.path / ".mad" / "history.sqlite"
    assert (values.references, values.compare, values.fail_on_regression, values.repeat, values.max_cv) == (
        None, None, None, 1, None)


def test_given_values(pytester: pytest.Pytester) -> None:
    values = settings_of(pytester, "--mad-history", "h.sqlite", "--mad-references", "refs.yaml",
                         "--mad-compare", "median:7d", "--mad-fail-on-regression", "5",
                         "--mad-repeat", "5", "--mad-max-cv", "2.5%")
    assert values.history == Path("h.sqlite").absolute() and values.references == Path("refs.yaml").absolute()
    assert (values.compare, values.fail_on_regression, values.repeat, values.max_cv) == ("median:7d", 5, 5, 2.5)
    assert settings_of(pytester, "--mad-history", "none").history is None
    assert settings_of(pytester).history_named is False and values.history_named is True


def test_history_urls_are_kept_for_the_backend(pytester: pytest.Pytester) -> None:
    url = "postgresql://ci@db.example:5432/mad"
    assert settings_of(pytester, "--mad-history", url).history == url
    assert settings_of(pytester, "--mad-history", "sqlite:///h.sqlite").history == "sqlite:///h.sqlite"


def test_ini_twins(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmad_compare = last\nmad_fail_on_regression = 5\nmad_repeat = 3\n")
    values = settings_of(pytester)
    assert (values.compare, values.fail_on_regression, values.repeat) == ("last", 5, 3)


# The grammar of --mad-compare is checked when the session starts (history.spec, a usage error:
# tests/acceptance/test_history.py and tests/history); settings only see that it needs a history.
@pytest.mark.parametrize(("args", "words"), [
    (("--mad-compare", "last", "--mad-history", "none"), "--mad-compare needs the history"),
    (("--mad-fail-on-regression", "5"), "add --mad-compare last"),
    (("--mad-compare", "last", "--mad-fail-on-regression", "five"), "'five' is not a percentage"),
    (("--mad-repeat", "0"), "--mad-repeat: '0' is not a run count"),
    (("--mad-repeat", "x"), "is not a run count"),
    (("--mad-max-cv", "5"), "needs at least two runs"),
])
def test_bad_values_are_usage_errors(pytester: pytest.Pytester, args: tuple[str, ...], words: str) -> None:
    with pytest.raises(pytest.UsageError) as caught:  # exit 4 with one line, from every caller of from_config
        settings_of(pytester, *args)
    assert words in str(caught.value)
