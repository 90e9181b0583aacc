"""The thread that copies a container's attached output to the run log (and live lines)."""
from __future__ import annotations

import codecs
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from .keepalive import ModelExit


class LogPump(threading.Thread):
    """Copies the container's output to the log file (and the live callback, line by line).

    The stream is an attach made before the container starts, as `docker run` does: reading the
    logs after start races the engine's log writer, and a model that exits within milliseconds
    could then come back with an empty log (seen on a loaded CI engine).
    The stream is always read to its end: when the log cannot be written (disk full, quota) the
    rest of the output is dropped and ``write_error`` says why, but a container whose output
    nobody reads would block on a full pipe and never exit.
    """

    def __init__(self, stream: Iterable[bytes], log_path: Path, live: Callable[[str], None] | None,
                 model_exit: ModelExit | None = None) -> None:
        super().__init__(daemon=True)
        self.stream, self.log_path, self.live = stream, log_path, live
        self.model_exit = model_exit  # --mad-keep-alive: the log ends with the model, the container idles on
        self.write_error = ""

    def run(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks may split characters
        log = self._open()
        pending = ""
        try:
            for chunk in self.stream:
                text = decoder.decode(chunk)
                log = self._write(log, text)
                if self.model_exit is not None and log is not None and self.model_exit.feed(text):
                    self._close(log)  # the model is done: its log is complete, the stream stays open
                    log = None
                if self.live:
                    *lines, pending = (pending + text).split("\n")
                    for line in lines:
                        self.live(line)
        except Exception as exc:  # noqa: BLE001 - engine gone or container removed under us: keep the log
            log = self._write(log, f"\n[pytest-madengine: log stream ended: {exc}]\n")
        finally:
            self._close(log)
            self._close_stream()
        if self.live and pending:
            self.live(pending)

    def _close_stream(self) -> None:
        """Close the attach connection: left open, its socket is a ResourceWarning (an error under
        ``-W error``). docker-py's ``CancellableStream.close`` shuts the socket but keeps the HTTP
        response's socket object alive, which warns too; closing the response releases both."""
        response = getattr(self.stream, "_response", None)
        if response is not None:
            response.close()
        elif callable(getattr(self.stream, "close", None)):
            self.stream.close()  # type: ignore[attr-defined]

    def _open(self) -> TextIO | None:
        try:
            return self.log_path.open("w", encoding="utf-8")
        except OSError as exc:
            self.write_error = f"{exc.strerror or exc}"
            return None

    def _write(self, log: TextIO | None, text: str) -> TextIO | None:
        if log is None:
            return None
        try:
            log.write(text)
            return log
        except OSError as exc:
            self.write_error = f"{exc.strerror or exc}"
            self._close(log)
            return None

    def _close(self, log: TextIO | None) -> None:
        if log is None:
            return
        try:
            log.close()
        except OSError as exc:  # the buffered tail did not fit either
            self.write_error = self.write_error or f"{exc.strerror or exc}"
