"""``python -m pytest_madengine report to-html|to-email`` and ``… database [upload]``.

Both the plugin's forms and madengine's own flags are accepted:

``report to-html CSV [-o HTML]`` or ``report to-html --csv-file-path CSV``: a self-contained page per
CSV (default ``<csv>.html``).
``report to-email [DIR] [-o HTML]``: every CSV of DIR in one mail body (default ``DIR/run_results.html``;
``-o`` relative to the current directory). madengine's ``report to-email --directory/--dir DIR
[--output/-o NAME]`` writes ``DIR/NAME``, as madengine does.
``database upload FILE --database DB --collection C`` or madengine's ``database -f/--file/--csv-file FILE
--db DB -c C [-k FIELDS] [--batch-size N] [--no-upsert] [--no-index] [--dry-run]``, plus ``--uri`` and
``--session``: upsert into MongoDB on madengine's key (``reports.mongo``; URI from ``--uri``,
``MAD_MONGO_URI`` or ``MONGO_HOST``/``MONGO_PORT``/``MONGO_USER``/``MONGO_PASSWORD``).
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

VERBOSE_HELP = "madengine's flag, accepted: the output is the same with or without it"


def add_commands(groups: CommandGroups) -> None:
    """Add ``report to-html``, ``report to-email`` and ``database upload``."""
    report = groups.group("report", "reports made from results files and the history")
    html = report.add_parser("to-html", help="one self-contained HTML page (sortable table, chart) per CSV")
    html.add_argument("csv", type=Path, nargs="?", help="results CSV (perf.csv, perf_super.csv, ...)")
    html.add_argument("--csv-file-path", "--csv-file", dest="csv_option", type=Path, help="the CSV (madengine's flag)")
    html.add_argument("-o", "--output", type=Path, help="HTML file (default: the CSV's name with .html)")
    html.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    html.set_defaults(handler=_to_html)
    email = report.add_parser("to-email", help="every CSV of a directory as one HTML mail body")
    email.add_argument("directory", type=Path, nargs="?", help="directory (default .)")
    email.add_argument("--directory", "--dir", dest="directory_option", type=Path,
                       help="directory (madengine's flag: a relative --output is then inside it)")
    email.add_argument("-o", "--output", type=Path, help="HTML file (default DIRECTORY/run_results.html)")
    email.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    email.set_defaults(handler=_to_email)
    database = groups.group("database", "results in MongoDB")
    upload = database.add_parser("upload", help="upsert a results file (CSV or JSON) on madengine's key")
    upload.add_argument("file", type=Path, nargs="?", help="perf.csv, perf_super.csv, perf_super.json, ...")
    upload.add_argument("-f", "--file", "--csv-file", dest="file_option", type=Path, help="the file (madengine's flag)")
    upload.add_argument("--database", "--db", required=True, help="database name")
    upload.add_argument("--collection", "-c", required=True, help="collection name")
    upload.add_argument("-k", "--unique-key", help="upsert key, comma-separated fields (default: madengine's "
                                                   "auto-detection, or model,session with --session)")
    upload.add_argument("--batch-size", type=_positive, default=1000, help="documents per bulk write (default 1000)")
    upload.add_argument("--no-upsert", action="store_true", help="insert only (no key, duplicates kept)")
    upload.add_argument("--no-index", action="store_true", help="create no index on the key fields")
    upload.add_argument("--dry-run", action="store_true", help="read and key the documents; send nothing")
    upload.add_argument("--uri", help="MongoDB URI (default MAD_MONGO_URI, else MONGO_HOST/PORT/USER/PASSWORD)")
    upload.add_argument("--session", help="a session id set on every record (and the key with model)")
    upload.add_argument("--timeout", type=float, default=10.0, help="seconds to reach the server (default 10)")
    upload.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    upload.set_defaults(handler=_upload)


def with_default_actions(argv: list[str]) -> list[str]:
    """madengine's ``database -f FILE ...`` (no action word) as ``database upload -f FILE ...``."""
    if len(argv) >= 2 and argv[0] == "database" and argv[1].startswith("-") and argv[1] not in ("-h", "--help"):
        return [argv[0], "upload", *argv[1:]]
    return argv


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _one(positional: Path | None, option: Path | None, flag: str) -> Path | None:
    if positional is not None and option is not None and positional != option:
        raise MadError(f"two files given: {positional} and {flag} {option}", where=flag, fix="give one of them")
    return option if option is not None else positional


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Carry out a parsed command; a MadError becomes one line on stderr and exit status 2."""
    try:
        return int(args.handler(args, out or sys.stdout))
    except MadError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2


def _to_html(args: argparse.Namespace, out: TextIO) -> int:
    from .html import write_html

    csv = _one(args.csv, args.csv_option, "--csv-file-path")
    if csv is None:
        raise MadError("no CSV given", where="report to-html", fix="give the CSV: report to-html perf.csv "
                       "(or madengine's --csv-file-path perf.csv)")
    print(f"wrote {write_html(csv, args.output)}", file=out)
    return 0


def _to_email(args: argparse.Namespace, out: TextIO) -> int:
    from .html import write_email

    directory = _one(args.directory, args.directory_option, "--directory") or Path(".")
    output = args.output
    if args.directory_option is not None and output is not None and not output.is_absolute():
        output = directory / output  # madengine: --output names a file inside --directory
    print(f"wrote {write_email(directory, output)}", file=out)
    return 0


def _upload(args: argparse.Namespace, out: TextIO) -> int:
    require("pymongo", "database upload")
    from .mongo import UploadOptions, redact_uri, resolve_uri, upload

    path = _one(args.file, args.file_option, "-f/--file")
    if path is None:
        raise MadError("no file given", where="database upload",
                       fix="give the results file: database upload perf.csv (or madengine's -f perf.csv)")
    key = tuple(name.strip() for name in (args.unique_key or "").split(",") if name.strip())
    options = UploadOptions(unique_key=key, session=args.session, upsert=not args.no_upsert,
                            create_index=not args.no_index, batch_size=args.batch_size, dry_run=args.dry_run,
                            timeout=args.timeout)
    uri = resolve_uri(args.uri, os.environ)
    report = upload(path, uri=uri, database=args.database, collection=args.collection, options=options)
    print(f"{path} → {redact_uri(uri)}: {report.line()}", file=out)
    return 0
