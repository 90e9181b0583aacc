"""One pod's log, streamed live into a file and read again wherever the stream broke.

A log stream (``follow=True``) ends when the container ends, but also when kube-apiserver or the
kubelet serving the log restarts, and both can look alike to the client (a clean end of the
chunked response). So an ended stream is read again from the start, the complete lines already
received are skipped (counted, so no line is written twice), and reading stops only when a read
brings no new line after the follower saw the container end, or the pod is gone. A result is
thus judged on the whole log. A log the kubelet rotated (over 10 MiB) cannot be read again whole:
the lines before the rotation stay as received.
"""
from __future__ import annotations

import codecs
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .api import api_message, is_connection_error, is_not_found
from .objects import CONTAINER
from .payload import ResultsFilter

RETRY_SECONDS = 1.0  # between two reads of a log whose stream broke
GIVE_UP_SECONDS = 120  # of failing reads in a row, before the log is reported incomplete
CHUNK = 4096


class PodLog(threading.Thread):
    """Streams the log of pod ``pod`` into ``path`` and ``live`` (each line with ``prefix``), the
    results block cut out (``filter``). ``ended()`` says whether the follower saw the container end."""

    def __init__(self, core: Any, namespace: str, pod: str, path: Path, mark: str,
                 live: Callable[[str], None] | None, prefix: str, ended: Callable[[], bool]) -> None:
        super().__init__(daemon=True, name=f"log-{pod}")
        self.core, self.namespace, self.pod, self.path = core, namespace, pod, path
        self.filter = ResultsFilter(mark)
        self.live, self.prefix, self.ended = live, prefix, ended
        self.lines = 0  # complete lines received so far (results block included)
        self.reads = 0  # log requests made (1 when no stream broke)
        self._stopped = threading.Event()
        self._nudged = threading.Event()  # the follower learnt something (the container ended): look again
        self._response: Any = None

    def run(self) -> None:
        with self.path.open("w", encoding="utf-8") as log:
            pending, failing_since = "", 0.0
            while not self._stopped.is_set():
                before = self.lines
                try:
                    pending = self._read(log)
                except Exception as exc:  # noqa: BLE001 -- pod gone, or the API / kubelet away: read again
                    if self._stopped.is_set():
                        break
                    failing_since = failing_since or time.monotonic()
                    if not self._retryable(exc) or time.monotonic() - failing_since > GIVE_UP_SECONDS:
                        log.write(f"[pytest-madengine: the log stream ended: {_short(exc)}]\n")
                        break
                    self._pause()
                    continue
                failing_since = 0.0
                if self.lines == before and self.ended():
                    break
                if self.lines == before:
                    self._pause()  # the container runs on (the stream broke), or its end is not known yet
            if pending:
                self._line(log, pending)

    def _pause(self) -> None:
        self._nudged.wait(RETRY_SECONDS)
        self._nudged.clear()

    def nudge(self) -> None:
        """Wake a reader waiting to read again (the follower saw the container or the Job end)."""
        self._nudged.set()

    def _read(self, log: IO[str]) -> str:
        """One read of the whole log, lines already received skipped; returns the unfinished last line."""
        skip = self.lines
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        self.reads += 1
        self._response = self.core.read_namespaced_pod_log(
            self.pod, self.namespace, container=CONTAINER, follow=True, _preload_content=False)
        try:
            for chunk in self._response.stream(CHUNK):
                *lines, pending = (pending + decoder.decode(chunk)).split("\n")
                for line in lines:
                    if skip:
                        skip -= 1
                        continue
                    self.lines += 1
                    self._line(log, line)
        finally:
            with contextlib.suppress(Exception):
                self._response.release_conn()
        return pending + decoder.decode(b"", final=True)

    def _line(self, log: IO[str], line: str) -> None:
        if not self.filter.keep(line):
            return
        log.write(line + "\n")
        log.flush()
        if self.live is not None:
            self.live(self.prefix + line)

    def stop(self) -> None:
        """Unblock the reader: shut the socket down (closing the response from here would wait for
        the reading thread's buffer lock, forever on a pod that prints nothing)."""
        self._stopped.set()
        self._nudged.set()
        connection = getattr(self._response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _retryable(self, exc: BaseException) -> bool:
        """A broken connection, the apiserver unable to reach the kubelet (5xx), or a kubelet just
        restarted that does not know the pod yet (404 while the pod exists); not a deleted pod."""
        if is_not_found(exc):
            return self._pod_exists()
        return is_connection_error(exc) or int(getattr(exc, "status", 0) or 0) >= 500

    def _pod_exists(self) -> bool:
        try:
            self.core.read_namespaced_pod(self.pod, self.namespace)
        except Exception as exc:  # noqa: BLE001 -- unknown (the API away): try the log again
            return not is_not_found(exc)
        return True


def _short(exc: BaseException) -> str:
    return api_message(exc)[2][:200] if getattr(exc, "status", None) else type(exc).__name__
