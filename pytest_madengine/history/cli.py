"""``python -m pytest_madengine history …`` and ``… report dashboard``: the history from a shell.

``history list`` (sessions, newest first), ``history show MODEL`` (the model's trend as a
table), ``history export FILE.csv`` (every row with its session's fields), ``report dashboard``
(the HTML dashboard). ``--history PATH`` defaults to ``./.mad/history.sqlite`` (the package in
the current directory). Exit status: 0, or 2 with one line on stderr for a problem a user can
fix (no history file, unknown model, bad option).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ..errors import MadError
from ..extras import require
from ..reports.commands import CommandGroups
from .schema import EXTRA_COLUMNS, PERF_COLUMNS
from .store import HistoryStore, Match

SESSION_EXPORT = ("session_id", "session_started", "session_host", "session_target", "session_git_commit")


def add_commands(groups: CommandGroups) -> None:
    """Add ``history list|show|export`` and ``report dashboard`` to ``python -m pytest_madengine``."""
    actions = groups.group("history", "list sessions, show a model's trend, export CSV")
    listing = actions.add_parser("list", help="sessions, newest first")
    listing.add_argument("--limit", type=int, default=20, help="at most this many sessions (default 20; 0 = all)")
    show = actions.add_parser("show", help="one model's values per session")
    show.add_argument("model", help="row model name as in perf.csv")
    export = actions.add_parser("export", help="every stored row as CSV")
    export.add_argument("file", type=Path, help="CSV file to write ('-' = standard output)")
    export.add_argument("--session", help="only this session")
    export.add_argument("--model", help="only this row model")
    kinds = groups.group("report", "reports made from perf.csv files and the history")
    dashboard = kinds.add_parser("dashboard", help="self-contained HTML dashboard of the history")
    dashboard.add_argument("-o", "--output", type=Path, default=Path("mad_dashboard.html"),
                           help="HTML file to write (default mad_dashboard.html)")
    dashboard.add_argument("--references", type=Path, help="references file: draws the reference bands")
    dashboard.add_argument("--compare", default="last", help="baseline of the latest-session table (default last)")
    dashboard.add_argument("--fail-on-regression", type=float, help="mark changes worse than PCT percent")
    for parser in (listing, show, export, dashboard):
        parser.add_argument("--history", type=Path, default=Path(".mad") / "history.sqlite",
                            help="history file (default .mad/history.sqlite)")
        parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Carry out a parsed ``history`` / ``report`` command (output to ``out``, default stdout).

    A :class:`MadError` becomes one line on stderr and exit status 2.
    """
    out = out or sys.stdout
    try:
        if not Path(args.history).is_file():
            raise MadError("no history file here", where=str(args.history),
                           fix="pass --history PATH (sessions write <package>/.mad/history.sqlite)")
        with HistoryStore(args.history) as store:
            if args.command == "report":
                return _dashboard(store, args, out)
            return {"list": _list, "show": _show, "export": _export}[args.action](store, args, out)
    except MadError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2


def _list(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    table = [("session", "started (UTC)", "duration", "target", "host", "GPUs", "rows", "failed", "commit")]
    for item in store.sessions(limit=args.limit or None):
        info = item.info
        duration = f"{info.ended - info.started:.0f} s" if info.ended is not None else "unfinished"
        gpus = f"{info.gpu_architecture} × {info.gpu_count}" if info.gpu_architecture else str(info.gpu_count or "")
        nodes = f", {info.nodes} nodes" if info.nodes > 1 else ""
        table.append((info.id, _utc(info.started), duration, info.target, info.host, gpus + nodes,
                      str(item.rows), str(item.failures), info.git_commit[:10]))
    _print_table(table, out)
    return 0


def _show(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    from ..results.references import fmt, relative_change
    from .dashboard import collect_series

    series = [s for match, s in collect_series(store.rows(model=args.model)).items() if match.model == args.model]
    if not series:
        known = store.models()
        hint = f"known: {', '.join(known[:10])}{' …' if len(known) > 10 else ''}" if known else "the history is empty"
        raise MadError(f"no rows for the model {args.model!r}", where=str(store.path), fix=hint)
    for item in sorted(series, key=lambda s: (s.match.gpu_architecture, s.match.n_gpus, s.match.nnodes)):
        print(f"{args.model} · {_describe(item.match)} · {item.metric or 'no metric'}", file=out)
        table = [("session", "started (UTC)", "value", "change", "status", "rows")]
        previous: float | None = None
        for point in item.points:
            change = ""
            if point.value is not None and previous is not None:
                change = f"{relative_change(point.value, previous):+.1f} %"
            table.append((point.session_id, _utc(point.started), "" if point.value is None else fmt(point.value),
                          change, point.status, str(point.runs)))
            previous = point.value if point.value is not None else previous
        _print_table(table, out)
        print(file=out)
    return 0


def _export(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    if str(args.file) == "-":
        _write_csv(store, args, out)
        return 0
    with Path(args.file).open("w", newline="", encoding="utf-8") as handle:
        count = _write_csv(store, args, handle)
    print(f"{count} row(s) written to {args.file}", file=out)
    return 0


def _write_csv(store: HistoryStore, args: argparse.Namespace, handle: TextIO) -> int:
    sessions = {item.info.id: item.info for item in store.sessions()}
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([*SESSION_EXPORT, *PERF_COLUMNS, *(c for c in EXTRA_COLUMNS if c != "recorded")])
    count = 0
    for row in store.rows(session_id=args.session, model=args.model):
        info = sessions[row.session_id]
        writer.writerow([row.session_id, _utc(info.started), info.host, info.target, info.git_commit,
                         *(row.fields[name] for name in PERF_COLUMNS),
                         "" if row.value is None else repr(row.value), row.phase, row.reason, row.repeat,
                         row.row_index, row.image_digest])
        count += 1
    return count


def _dashboard(store: HistoryStore, args: argparse.Namespace, out: TextIO) -> int:
    require("plotly", "report dashboard")
    from ..results.reference_file import load_references
    from .dashboard import write_dashboard

    references = load_references(args.references) if args.references else None
    started = time.perf_counter()
    path = write_dashboard(store, args.output, references=references, compare=args.compare,
                           fail_pct=args.fail_on_regression)
    size = path.stat().st_size / 1e6
    print(f"dashboard written to {path} ({size:.1f} MB, {time.perf_counter() - started:.2f} s)", file=out)
    return 0


def _describe(match: Match) -> str:
    return match.context().describe() or "no GPU facts"


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)
