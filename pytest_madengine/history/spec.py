"""The ``--mad-compare`` specification: which history values a result is compared with.

Pure value parsing (stdlib only), so ``settings`` can validate the option without importing
the store.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MadError

KINDS = ("last", "best", "mean", "median", "changepoint", "session")

_WINDOW = re.compile(r"^(mean|median):(\d+)([dh]?)$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


@dataclass(frozen=True)
class CompareSpec:
    """A parsed ``--mad-compare`` value.

    ``kind`` is one of :data:`KINDS`. ``last``: the newest earlier session's value; ``best``:
    the best session value ever (direction-aware); ``mean``/``median``: over the last ``count``
    sessions, or over the sessions of the last ``seconds`` (``mean:10``, ``median:7d``,
    ``mean:12h``); ``session``: the value of the session whose id is ``session_id``.
    """

    kind: str
    count: int | None = None  # mean/median over this many sessions
    seconds: float | None = None  # mean/median over sessions started within this many seconds
    session_id: str = ""
    text: str = ""  # the value as the user wrote it (for messages)


def parse_compare_spec(text: str, *, where: str = "--mad-compare") -> CompareSpec:
    """Parse ``last``, ``best``, ``changepoint``, ``mean:N``, ``median:N``, ``mean:Nd``/``Nh`` or a session id.

    Raises :class:`MadError` naming ``where`` for a malformed value (``mean:``, ``median:0``,
    ``mean:3w``, an id with spaces).
    """
    value = text.strip()
    if value in ("last", "best", "changepoint"):
        return CompareSpec(kind=value, text=value)
    if value.startswith(("mean:", "median:")):
        match = _WINDOW.match(value)
        if not match or int(match.group(2)) == 0:
            raise MadError(
                f"{value!r} is not a valid window",
                where=where,
                fix="write mean:N or median:N (N > 0 sessions), or mean:Nd / median:Nh for the "
                "sessions of the last N days / hours, e.g. median:7d",
            )
        kind, number, unit = match.group(1), int(match.group(2)), match.group(3)
        if unit:
            return CompareSpec(kind=kind, seconds=number * (86400.0 if unit == "d" else 3600.0), text=value)
        return CompareSpec(kind=kind, count=number, text=value)
    if _SESSION_ID.match(value):
        return CompareSpec(kind="session", session_id=value, text=value)
    raise MadError(
        f"{text!r} is neither last, best, changepoint, mean:N, median:N[d|h] nor a session id",
        where=where,
        fix="use one of those forms; `python -m pytest_madengine history list` shows the session ids",
    )
