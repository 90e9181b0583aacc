"""Scan a model's log for error patterns that turn a run into FAILURE (madengine's log scan).

Patterns are literal text (madengine's defaults contain ``(`` and ``:``), matched case-sensitively.
The whole log is searched with one compiled alternation; only the few matching lines are then
looked at in Python, so a 100 MB log costs one regex pass.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_ERROR_PATTERNS: tuple[str, ...] = (
    "OutOfMemoryError",
    "HIP out of memory",
    "CUDA out of memory",
    "RuntimeError:",
    "AssertionError:",
    "ValueError:",
    "SystemExit",
    "failed (exitcode:",
    "Traceback (most recent call last)",
    "FAILED",
    "Exception:",
    "ImportError:",
    "ModuleNotFoundError:",
)

# Lines madengine never counts as errors (``container_runner``'s default benign rules): metrics-exporter
# chatter, FutureWarning lines, profiler and tracer output (literals), and glog-style E/W lines of
# rocprofv3/rocpd, whose letter is a log level, not an application error (regexes). The user's
# ``log_error_benign_patterns`` add to these.
DEFAULT_BENIGN_LITERALS: tuple[str, ...] = (
    "Failed to establish connection to the metrics exporter agent",
    "RpcError: Running out of retries to initialize the metrics agent",
    "Metrics will not be exported",
    "FutureWarning",
    "Opened result file:",
    "SQLite3 generation ::",
    "rocpd_op:",
    "rpd_tracer:",
)
DEFAULT_BENIGN_REGEXES: tuple[re.Pattern[str], ...] = tuple(re.compile(pattern) for pattern in (
    r"^E[0-9]{8}.*generateRocpd\.cpp",
    r"^W[0-9]{8}.*simple_timer\.cpp",
    r"^W[0-9]{8}.*generateRocpd\.cpp",
    r"^E[0-9]{8}.*tool\.cpp",
    r"\[rocprofv3\]",
))

_GREP_WORD = re.compile(r"\b[ef]?grep\b")
_SHELL_TRACE = re.compile(r"^\s*\++\s")  # `set -x` output: "+ grep ...", "++ grep ..."
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

_FALSE = {"false", "0", "no", "off"}


def scan_errors(log_text: str, context: Mapping[str, Any] | None = None) -> str | None:
    """The first log line holding an error pattern (stripped), or None when the log is clean."""
    context = context or {}
    if str(context.get("log_error_pattern_scan", True)).strip().lower() in _FALSE:
        return None
    patterns = _as_list(context.get("log_error_patterns"), DEFAULT_ERROR_PATTERNS)
    benign = _as_list(context.get("log_error_benign_patterns"), ())
    if not patterns:
        return None
    regex = _compile(patterns)
    position = 0
    while True:
        match = regex.search(log_text, position)
        if match is None:
            return None
        start = log_text.rfind("\n", 0, match.start()) + 1
        end = log_text.find("\n", match.end())
        end = len(log_text) if end < 0 else end
        line = log_text[start:end].rstrip("\r")
        if not _is_grep_echo(line, regex) and not _is_benign(line, benign):
            return line.strip()
        position = end + 1


def scan_config(card_raw: Mapping[str, Any] | None, context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The scan settings of one run: a card's ``log_error_*`` keys under the context's (madengine's
    ``resolve_log_error_scan_config``): the context's scan flag and patterns win, benign lists add up."""
    card_raw, context = card_raw or {}, context or {}
    config: dict[str, Any] = {}
    for key in ("log_error_pattern_scan", "log_error_patterns"):
        value = context.get(key, card_raw.get(key))
        if value is not None:
            config[key] = value
    benign = [*_as_list(card_raw.get("log_error_benign_patterns"), ()),
              *_as_list(context.get("log_error_benign_patterns"), ())]
    if benign:
        config["log_error_benign_patterns"] = benign
    return config


def _as_list(value: Any, default: Iterable[str]) -> tuple[str, ...]:
    if value is None:
        return tuple(default)
    if isinstance(value, str):
        value = [value]
    return tuple(str(item) for item in value if str(item))


_cache: dict[tuple[str, ...], re.Pattern[str]] = {}


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    if patterns not in _cache:
        # Longest first so that an alternation never stops at a shorter pattern's prefix.
        ordered = sorted(set(patterns), key=len, reverse=True)
        _cache[patterns] = re.compile("|".join(re.escape(p) for p in ordered))
    return _cache[patterns]


# One pass per line for the defaults: the literals as one alternation, the regexes as another.
_BENIGN_LITERALS = re.compile("|".join(re.escape(text) for text in DEFAULT_BENIGN_LITERALS))
_BENIGN_REGEXES = re.compile("|".join(f"(?:{regex.pattern})" for regex in DEFAULT_BENIGN_REGEXES))


def _is_benign(line: str, benign: tuple[str, ...]) -> bool:
    return bool(_BENIGN_LITERALS.search(line) or _BENIGN_REGEXES.search(line.lstrip())
                or (benign and _compile(benign).search(line)))


def _is_grep_echo(line: str, regex: re.Pattern[str]) -> bool:
    """True when the pattern only appears because a grep command line was printed."""
    if not _GREP_WORD.search(line):
        return False
    if _SHELL_TRACE.match(line):
        return True
    # Every occurrence must sit inside a quoted argument (grep -E 'FAILED|Error:' ...).
    quoted = [m.span() for m in _QUOTED.finditer(line)]
    return all(any(a <= hit.start() and hit.end() <= b for a, b in quoted) for hit in regex.finditer(line))
