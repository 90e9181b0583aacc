"""``--mad-keep-alive`` on the local target, as madengine does it (``docker run -d ... cat``): the
container stays running after the model, so a person can enter it (``docker exec -it NAME bash``)
and look at what the model left behind; the session leaves it running and says how to enter it.

The model runs as the container's first process under a ``sh`` wrapper that prints :data:`MARK`
with the model's exit code, then idles (``tail -f /dev/null``) instead of exiting; the target
takes the model's end from that line of the output stream, not from the container's exit.
"""
from __future__ import annotations

import re
import threading

MARK = "[pytest-madengine] model exited with code "
_WRAPPER = (f'"$@"; mad_code=$?; echo "{MARK}$mad_code; container kept running (--mad-keep-alive)"; '
            "exec tail -f /dev/null")
_MARK_LINE = re.compile(re.escape(MARK) + r"(\d+)")


def wrapped(command: list[str]) -> list[str]:
    """The container command that runs ``command`` (an argv list, never a shell string), then idles."""
    return ["sh", "-c", _WRAPPER, "mad-model", *command]


def enter_hint(container: str) -> str:
    return f"container {container} kept running (--mad-keep-alive); enter it with: docker exec -it {container} bash"


class ModelExit:
    """Watches the output stream for :data:`MARK`; ``wait`` returns the model's exit code (None: timeout)."""

    def __init__(self) -> None:
        self._seen = threading.Event()
        self._code: int | None = None
        self._carry = ""  # the end of the previous chunk: the mark may be split across chunks

    def feed(self, text: str) -> bool:
        """Look at the next chunk of output; True once the mark was seen."""
        if not self._seen.is_set():
            window = self._carry + text
            match = _MARK_LINE.search(window)
            if match and window[match.end():match.end() + 1] in (";", "\n"):
                self._code = int(match.group(1))
                self._seen.set()
            self._carry = window[-(len(MARK) + 12):]
        return self._seen.is_set()

    def wait(self, timeout: float | None) -> int | None:
        return self._code if self._seen.wait(timeout) else None
