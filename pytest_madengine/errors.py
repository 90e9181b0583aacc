"""One error type for every problem a user can fix, rendered as one clear paragraph."""
from __future__ import annotations

import warnings
from collections.abc import Hashable


class MadError(Exception):
    """A problem with the user's input or environment.

    ``problem`` says what is wrong, ``where`` names the file/field/card, ``fix`` says what to
    do. The plugin turns it into a pytest usage error (collection) or a clean test failure
    (run), never a traceback.
    """

    def __init__(self, problem: str, *, where: str = "", fix: str = "") -> None:
        self.problem = problem.rstrip(".")
        self.where = where
        self.fix = fix.rstrip(".")
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.problem}." if self.where else f"{self.problem}."
        if self.fix:
            text += f" Fix: {self.fix}."
        return text


class MadSkip(Exception):
    """The model cannot run here (architecture skipped, not enough GPUs): skip with reason."""


class WarnOnce:
    """Issues each warning at most once per key: "warned about once, naming the key and where".

    One instance per scope that must not repeat itself (a session, or a module for what the same
    process would otherwise say again for every model). Keys are usually ``(key, where)`` pairs.
    """

    def __init__(self) -> None:
        self._seen: set[Hashable] = set()

    def first(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (and remembers it), False after that."""
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def clear(self) -> None:
        """Forget what was said (a module-level instance outlives one in-process pytest run)."""
        self._seen.clear()

    def warn(self, key: Hashable, warning: Warning, *, stacklevel: int = 2) -> None:
        """``warnings.warn(warning)`` unless ``key`` was warned about already; ``stacklevel`` as the
        caller would pass it to ``warnings.warn``."""
        if self.first(key):
            warnings.warn(warning, stacklevel=stacklevel + 1)
