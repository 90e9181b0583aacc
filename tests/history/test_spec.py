"""The --mad-compare grammar: accepted forms and the errors for malformed ones."""
from __future__ import annotations

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.history.spec import parse_compare_spec


@pytest.mark.parametrize(("text", "kind"), [("last", "last"), ("best", "best"), ("mean:5", "mean"),
                                            ("median:7d", "median"), ("mean:12h", "mean")])
def test_accepted_forms(text: str, kind: str) -> None:
    assert parse_compare_spec(text).kind == kind


@pytest.mark.parametrize(("text", "words"), [("mean:0", "'mean:0' is not a valid window"),
                                             ("last week", "neither last, best"), ("mean:3w", "mean:3w")])
def test_malformed_forms_name_the_option(text: str, words: str) -> None:
    with pytest.raises(MadError) as caught:
        parse_compare_spec(text)
    assert words in caught.value.message and "--mad-compare" in caught.value.message
