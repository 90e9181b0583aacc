"""Reports made from a results CSV (perf.csv, perf_super.csv, ...): madengine's ``report to-html``
and ``report to-email``.

* :func:`write_html` — one self-contained page per CSV (``perf.csv`` → ``perf.html`` beside it, as
  madengine names it): per metric a bar chart of the performance per model (uPlot inlined, no
  network needed; the model's last row with a number, coloured by status, hover shows the row
  count) and the table, every column sortable by a click on its header.
* :func:`write_email` — madengine's ``to-email``: every ``*.csv`` of a directory, one ``<h2>`` and
  table each, in one HTML body for mail (``run_results.html``): inline styles only, no script, no
  external resource.

Size bound: the CSV is streamed once; tables show the newest :data:`MAX_TABLE_ROWS` rows with a
note saying how many there are (the charts aggregate every row), so 100,000 rows give a page of
about 1 MB in a few seconds with bounded memory.

A missing, empty or unreadable CSV is a :class:`MadError` naming the file.
"""
from __future__ import annotations

import csv
import html
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import MadError
from .page import chart_assets, environment, script_json

NUMERIC = ("performance", "n_gpus", "nnodes", "gpus_per_node", "build_duration", "test_duration",
           "data_download_duration", "build_number")
_STATUS_COLOURS = {"SUCCESS": "#1b5e20", "FAILURE": "#b00020", "SKIPPED": "#666666"}


MAX_TABLE_ROWS = 500  # rows a page or mail shows (the newest); the chart covers every row
MAX_BARS = 400  # models per metric chart
MAX_METRICS = 12  # metric charts per page


@dataclass(frozen=True)
class Bar:
    """A model's last numeric performance for one metric, its status and how many rows had a number."""

    value: float
    status: str
    rows: int


@dataclass
class Table:
    """A CSV file read in one pass: its header, the newest ``max_rows`` rows and aggregates of all rows.

    ``total``: data rows in the file; ``bars``: (metric, model) → :class:`Bar` over every row.
    """

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    total: int = 0
    bars: dict[tuple[str, str], Bar] = field(default_factory=dict)

    @property
    def capped(self) -> bool:
        return self.total > len(self.rows)

    def note(self) -> str:
        """Says what the page leaves out ('' when it shows every row)."""
        if not self.capped:
            return ""
        return (f"Showing the newest {len(self.rows):,} of {self.total:,} rows (the chart covers all of them); "
                f"the whole file is {self.path.name}.")


def read_table(path: Path, max_rows: int | None = None) -> Table:
    """The CSV at ``path``, streamed: memory holds at most ``max_rows`` rows (None = all).

    Raises MadError when it is missing, empty or not readable as CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise MadError(f"the CSV file {path} does not exist", where=str(path),
                       fix="give a results file written by a session (perf.csv, perf_super.csv)")
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip() for name in reader.fieldnames or [] if name]
            table = Table(path, columns, [])
            kept: deque[dict[str, str]] = deque(maxlen=max_rows)
            for raw in reader:
                row = {(k or "").strip(): (v or "") for k, v in raw.items() if k}
                kept.append(row)
                table.total += 1
                _add_bar(table.bars, row)
    except (OSError, csv.Error) as error:
        raise MadError(f"the CSV file {path} cannot be read ({error})", where=str(path),
                       fix="give a CSV file with a header line") from None
    if not columns:
        raise MadError(f"the CSV file {path} is empty", where=str(path), fix="give a CSV file with a header line")
    table.rows = list(kept)
    return table


def _add_bar(bars: dict[tuple[str, str], Bar], row: dict[str, str]) -> None:
    value = _number(row.get("performance", ""))
    if value is None:
        return
    key = (row.get("metric", ""), row.get("model", ""))
    bars[key] = Bar(value, row.get("status", ""), bars[key].rows + 1 if key in bars else 1)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def chart_spec(table: Table) -> list[dict[str, object]]:
    """One bar chart per metric (at most :data:`MAX_METRICS`): models (sorted, at most :data:`MAX_BARS`),
    their last numeric performance, status and row count, and a note on what was left out."""
    charts = []
    for metric in sorted({metric for metric, _ in table.bars})[:MAX_METRICS]:
        models = sorted(model for m, model in table.bars if m == metric)
        bars = [table.bars[(metric, model)] for model in models[:MAX_BARS]]
        left = len(models) - len(bars)
        charts.append({"metric": metric, "models": models[:MAX_BARS], "values": [bar.value for bar in bars],
                       "statuses": [bar.status for bar in bars], "rows": [bar.rows for bar in bars],
                       "note": f"{left} more model(s) not drawn (first {MAX_BARS} by name)" if left else ""})
    return charts


def render_html(table: Table) -> str:
    """The page's HTML: the chart data as escaped JSON, the table rows escaped by Jinja, uPlot inlined."""
    charts = chart_spec(table)
    metrics = len({metric for metric, _ in table.bars})
    classes = {column: "num" if column in NUMERIC else "" for column in table.columns}
    summary = (f"{table.total:,} row(s) from {table.path.name}; generated "
               f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Click a column header to sort.")
    notes = [table.note()] + ([f"Charts for the first {MAX_METRICS} of {metrics} metrics."]
                              if metrics > MAX_METRICS else [])
    return environment("report").get_template("results.html.j2").render(
        title=f"{table.path.name} — pytest-madengine results", summary=summary, notes=[n for n in notes if n],
        columns=table.columns, rows=table.rows, classes=classes, charts=charts, data_json=script_json(charts),
        **chart_assets())


def write_html(csv_path: Path, output: Path | None = None, *, max_rows: int = MAX_TABLE_ROWS) -> Path:
    """Write the page for ``csv_path`` to ``output`` (default: the CSV's path with ``.html``).

    The table holds the newest ``max_rows`` rows (the page says so); memory stays bounded by that.
    """
    table = read_table(csv_path, max_rows)
    output = Path(output) if output else Path(csv_path).with_suffix(".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_html(table), encoding="utf-8")
    return output


_CELL = "border:1px solid #d0d0d0;padding:4px 8px;font-size:13px;"
_HEAD = _CELL + "background:#f0f0f0;text-align:left;"


def email_section(table: Table) -> str:
    """One CSV as an ``<h2>`` (the file's stem, as madengine) and a table with inline styles."""
    head = "".join(f'<th style="{_HEAD}">{html.escape(column)}</th>' for column in table.columns)
    body = []
    for row in table.rows:
        cells = []
        for column in table.columns:
            value = row.get(column, "")
            colour = f"color:{_STATUS_COLOURS[value]};font-weight:bold;" if column == "status" and \
                value in _STATUS_COLOURS else ""
            cells.append(f'<td style="{_CELL}{colour}">{html.escape(value)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    note = (f'<p style="font-family:Arial,sans-serif;font-size:13px;color:#666666;">{html.escape(table.note())}</p>\n'
            if table.capped else "")
    return (f'<h2 style="font-family:Arial,sans-serif;font-size:16px;">{html.escape(table.path.stem)}</h2>\n{note}'
            f'<table style="border-collapse:collapse;font-family:Arial,sans-serif;">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n")


def write_email(directory: Path, output: Path | None = None, *, max_rows: int = MAX_TABLE_ROWS) -> Path:
    """Every ``*.csv`` of ``directory`` (sorted) in one mail body; default ``<directory>/run_results.html``.

    Each table holds the newest ``max_rows`` rows of its file, with a note when rows were left out.
    Raises MadError when the directory is missing or holds no CSV file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MadError(f"{directory} is not a directory", where=str(directory),
                       fix="give the directory that holds the results CSV files")
    output = Path(output) if output else directory / "run_results.html"
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise MadError(f"{directory} holds no .csv file", where=str(directory),
                       fix="give the directory where a session wrote perf.csv")
    sections = [email_section(read_table(path, max_rows)) for path in files]
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8") as handle:
        handle.write('<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
                     '<body style="margin:0;padding:12px;color:#222222;">\n')
        handle.writelines(sections)
        handle.write("</body></html>\n")
    return output
