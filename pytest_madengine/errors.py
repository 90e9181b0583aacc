"""One error type for every problem a user can fix, rendered as one clear paragraph."""
from __future__ import annotations


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
