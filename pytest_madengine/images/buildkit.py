"""BuildKit builds through the docker command line (the Docker SDK cannot drive BuildKit).

Every image is built with BuildKit where a docker client can run it (:func:`default_cli`), as
``docker build`` does on Docker 23 and later, so heredocs, ``COPY --chmod`` and ``COPY --link``
build as with madengine. The SDK's classic builder is used only where BuildKit is unavailable (no
buildx plugin and no client older than 23, or ``DOCKER_BUILDKIT=0``), said once per process by a
:class:`BuildKitWarning`. A Dockerfile *needs* BuildKit when it has a ``# syntax=`` directive, a
``RUN --mount=...`` or uses the ``tools`` build context (``COPY --from=tools``, ``--mount=...,from=tools``). madengine passes
``--build-context tools=docker/common`` (a ``docker buildx`` / dockerfile ≥ 1.4 feature); the
same files reach the build here through a stage this module adds in front of the Dockerfile's
first ``FROM`` (after its global ``ARG`` lines)::

    FROM scratch AS tools
    COPY .pytest-madengine-tools/ /

with ``docker/common`` packed into the context tar under ``.pytest-madengine-tools/``. That works
with the engine's built-in frontend (Docker 20.10, no registry needed) and with buildx alike;
``COPY --from=tools x y`` and ``RUN --mount=type=bind,from=tools,...`` see ``docker/common``'s files
as with madengine. Line numbers in BuildKit's messages are 2 higher than in the file (the log says so).

The command is an argv list (never a shell string): ``docker buildx build --load`` when the buildx
plugin answers, else a docker client older than 23 with ``DOCKER_BUILDKIT=1`` (newer clients need
buildx for BuildKit). The context is the tar we hash, sent on stdin.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import MadError
from ..fileio import printable

TOOLS_DIR = Path("docker") / "common"
TOOLS_IN_TAR = ".pytest-madengine-tools"
TOOLS_STAGE = f"FROM scratch AS tools\nCOPY {TOOLS_IN_TAR}/ /\n"
_SYNTAX = re.compile(r"^#\s*syntax\s*=\s*(\S+)", re.IGNORECASE)
_MOUNT = re.compile(r"^\s*RUN\b[^\n]*--mount=", re.IGNORECASE | re.MULTILINE)
_USES_TOOLS = re.compile(r"--from=tools\b|[,\s]from=tools\b", re.IGNORECASE)
_DEFINES_TOOLS = re.compile(r"^\s*FROM\s+\S+\s+AS\s+tools\s*$", re.IGNORECASE | re.MULTILINE)
_FIRST_FROM = re.compile(r"^\s*FROM\s", re.IGNORECASE | re.MULTILINE)
_STEP = re.compile(r"^#\d+ \[[^\]]+\] .+")
_HEREDOC = re.compile(r"^\s*(?:RUN|COPY|ADD)\b[^\n]*<<-?\s*[\"']?[A-Za-z_]", re.IGNORECASE | re.MULTILINE)
_LINK = re.compile(r"^\s*(?:COPY|ADD)\b[^\n]*\s--link\b", re.IGNORECASE | re.MULTILINE)
_FRONTEND_PULL = re.compile(r"resolve image config for (\S+)")


def syntax_directive(text: str) -> str:
    """The frontend image a ``# syntax=`` parser directive names ('' when none)."""
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        match = _SYNTAX.match(line)
        if match:
            return match.group(1)
    return ""


def uses_tools(text: str) -> bool:
    """Whether the Dockerfile reads the ``tools`` build context without defining a stage of that name."""
    return bool(_USES_TOOLS.search(text)) and not _DEFINES_TOOLS.search(text)


def buildkit_reason(text: str) -> str:
    """Why the Dockerfile needs BuildKit ('' when the classic builder can build it)."""
    if syntax_directive(text):
        return f"# syntax={syntax_directive(text)}"
    if _MOUNT.search(text):
        return "RUN --mount"
    if uses_tools(text):
        return "the tools build context"
    return ""


def with_tools_stage(text: str) -> str:
    """The Dockerfile with the ``tools`` stage inserted before its first ``FROM``."""
    match = _FIRST_FROM.search(text)
    at = match.start() if match else len(text)
    return text[:at] + TOOLS_STAGE + text[at:]


@dataclass(frozen=True)
class BuildCli:
    """A docker command line able to run BuildKit builds."""

    argv: tuple[str, ...]  # e.g. ("docker", "buildx", "build", "--load") or ("/usr/bin/docker", "build")
    env: tuple[tuple[str, str], ...] = ()


def find_build_cli() -> BuildCli:
    """The first docker client on PATH that can build with BuildKit. Raises MadError when none can."""
    seen: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = shutil.which("docker", path=directory) if directory else None
        if not path or os.path.realpath(path) in seen:
            continue
        seen.append(os.path.realpath(path))
        if _answers([path, "buildx", "version"]):
            return BuildCli((path, "buildx", "build", "--load"))
        major = _client_major(path)
        if major is not None and major < 23:
            return BuildCli((path, "build"), (("DOCKER_BUILDKIT", "1"),))
    raise MadError(
        "this Dockerfile needs BuildKit, and no docker client on PATH can run it: the buildx plugin "
        f"is missing and every client is version 23 or newer (checked: {', '.join(seen) or 'no docker found'})",
        where="docker build", fix="install the buildx plugin (Debian/Ubuntu: docker-buildx or docker-buildx-plugin)")


class BuildKitWarning(UserWarning):
    """Images are built with the classic builder because BuildKit is unavailable (says why)."""


def default_cli() -> BuildCli | None:
    """The docker client every build uses BuildKit through; None (after one BuildKitWarning per
    process naming why) where BuildKit is unavailable or ``DOCKER_BUILDKIT=0`` turns it off."""
    return _default_cli(os.environ.get("PATH", ""), os.environ.get("DOCKER_BUILDKIT", ""))


@functools.lru_cache(maxsize=8)
def _default_cli(path: str, flag: str) -> BuildCli | None:
    if flag == "0":
        why = "DOCKER_BUILDKIT=0 is set"
    else:
        try:
            return find_build_cli()
        except MadError as error:
            why = error.problem
    warnings.warn(BuildKitWarning(
        f"images are built with Docker's classic builder: {why}. Heredocs, COPY --chmod/--link and "
        "RUN --mount need BuildKit (install the buildx plugin, or unset DOCKER_BUILDKIT=0)"), stacklevel=3)
    return None


def _answers(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _client_major(path: str) -> int | None:
    try:
        done = subprocess.run([path, "version", "--format", "{{.Client.Version}}"], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"\s*(\d+)\.", done.stdout)
    return int(match.group(1)) if match else None


def run_build(cli: BuildCli, options: list[str], archive: Path, log_path: Path,
              redact: Callable[[str], str] = str,
              live: Callable[[str], None] | None = None) -> tuple[int, str, list[str]]:
    """Run ``cli`` + ``options`` + ``-`` with the context tar on stdin, appending output to the log
    (and each line to ``live``).

    Every output line passes through ``redact`` first (BuildKit shows ARG values in step names).
    Returns (exit status, the last BuildKit step seen, the last output lines).
    """
    env = dict(os.environ, **dict(cli.env))
    tail: deque[str] = deque(maxlen=15)
    step = ""
    with archive.open("rb") as context, log_path.open("a", encoding="utf-8") as log:
        with subprocess.Popen([*cli.argv, *options, "-"], stdin=context, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=env, text=True, errors="replace") as process:
            assert process.stdout is not None
            for raw in process.stdout:
                line = redact(raw)
                log.write(line)
                if live is not None and line.strip():
                    live(printable(line.rstrip("\n")))
                if line.strip():
                    tail.append(line.rstrip())
                if _STEP.match(line) and "[internal]" not in line:
                    step = line.strip()
        code = process.returncode  # the with block closed the pipe and waited
    return code, step, list(tail)


def failure_problem(image: str, step: str, tail: list[str], log_path: Path, dockerfile: str) -> tuple[str, str]:
    """(problem, fix) of a failed BuildKit build of the Dockerfile text ``dockerfile``."""
    text = "\n".join(tail)
    syntax = syntax_directive(dockerfile)
    pulled = _FRONTEND_PULL.search(text)
    if syntax and pulled:
        problem = (f"building image {image} failed: the Dockerfile's '# syntax={syntax}' frontend "
                   f"{pulled.group(1)} cannot be pulled (no registry reachable). Build log: {log_path}")
        fix = ("make the registry reachable, load that frontend image locally, or remove the '# syntax=' "
               "line: the engine's built-in frontend supports RUN --mount and the tools build context")
        return problem, fix
    newer = _newer_syntax(dockerfile)
    if newer and not syntax and "dockerfile parse error" in text:
        problem = (f"building image {image} failed: this Docker engine's built-in Dockerfile frontend does not "
                   f"parse {newer} (engines before Docker 23 ship an older one). Build log: {log_path}")
        fix = ("upgrade the Docker engine to 23 or later, or put '# syntax=docker/dockerfile:1.4' on the "
               "Dockerfile's first line (that frontend image must then be pullable or loaded locally)")
        return problem, fix
    shown = printable("\n".join(tail[-10:]))
    problem = (f"building image {image} failed at {step or 'the first step'} (BuildKit)\n"
               f"Last build output:\n{shown}\nFull build log: {log_path}")
    return problem, "fix the failing Dockerfile step (see the build log)"


def _newer_syntax(dockerfile: str) -> str:
    """The Dockerfile syntax newer than dockerfile frontend 1.2 that ``dockerfile`` uses ('' when none)."""
    found = [name for name, pattern in (("heredocs", _HEREDOC), ("COPY --link", _LINK)) if pattern.search(dockerfile)]
    return " and ".join(found)
