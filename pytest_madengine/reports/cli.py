"""``python -m pytest_madengine report to-html|to-email`` and ``… database upload``.

``report to-html CSV [-o HTML]``: a self-contained page per CSV (default ``<csv>.html``).
``report to-email [DIR] [-o HTML]``: every CSV of DIR in one mail body (default ``DIR/run_results.html``).
``database upload FILE --database DB --collection C [--uri URI] [--session ID]``: upsert into MongoDB
(URI from ``--uri``, ``MAD_MONGO_URI`` or ``MONGO_HOST``/``MONGO_PORT``/``MONGO_USER``/``MONGO_PASSWORD``).
Exit status 0; 2 with one line on stderr for a problem a user can fix (missing file, server down).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from ..errors import MadError
from ..extras import require
from .commands import CommandGroups


def add_commands(groups: CommandGroups) -> None:
    """Add ``report to-html``, ``report to-email`` and ``database upload``."""
    report = groups.group("report", "reports made from results files and the history")
    html = report.add_parser("to-html", help="one self-contained HTML page (sortable table, chart) per CSV")
    html.add_argument("csv", type=Path, help="results CSV (perf.csv, perf_super.csv, ...)")
    html.add_argument("-o", "--output", type=Path, help="HTML file (default: the CSV's name with .html)")
    html.set_defaults(handler=_to_html)
    email = report.add_parser("to-email", help="every CSV of a directory as one HTML mail body")
    email.add_argument("directory", type=Path, nargs="?", default=Path("."), help="directory (default .)")
    email.add_argument("-o", "--output", type=Path, help="HTML file (default DIRECTORY/run_results.html)")
    email.set_defaults(handler=_to_email)
    database = groups.group("database", "results in MongoDB")
    upload = database.add_parser("upload", help="upsert a results file (CSV or JSON) by model + session")
    upload.add_argument("file", type=Path, help="perf.csv, perf_super.csv, perf_super.json, ...")
    upload.add_argument("--database", "--db", required=True, help="database name")
    upload.add_argument("--collection", "-c", required=True, help="collection name")
    upload.add_argument("--uri", help="MongoDB URI (default MAD_MONGO_URI, else MONGO_HOST/PORT/USER/PASSWORD)")
    upload.add_argument("--session", help="session id of every record (default: <pipeline>-<build_number> per row)")
    upload.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the server (default 10)")
    upload.set_defaults(handler=_upload)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Carry out a parsed command; a MadError becomes one line on stderr and exit status 2."""
    try:
        return int(args.handler(args, out or sys.stdout))
    except MadError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2


def _to_html(args: argparse.Namespace, out: TextIO) -> int:
    require("plotly", "report to-html")
    from .html import write_html

    print(f"wrote {write_html(args.csv, args.output)}", file=out)
    return 0


def _to_email(args: argparse.Namespace, out: TextIO) -> int:
    from .html import write_email

    print(f"wrote {write_email(args.directory, args.output)}", file=out)
    return 0


def _upload(args: argparse.Namespace, out: TextIO) -> int:
    require("pymongo", "database upload")
    from .mongo import redact_uri, resolve_uri, upload

    uri = resolve_uri(args.uri, os.environ)
    report = upload(args.file, uri=uri, database=args.database, collection=args.collection,
                    session=args.session, timeout=args.timeout)
    print(f"{args.file} → {redact_uri(uri)}: {report.line()}", file=out)
    return 0
