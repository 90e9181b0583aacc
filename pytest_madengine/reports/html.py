"""Reports made from a results CSV (perf.csv, perf_super.csv, ...): madengine's ``report to-html``
and ``report to-email``.

* :func:`write_html` — one self-contained page per CSV (``perf.csv`` → ``perf.html`` beside it, as
  madengine names it): a bar chart of the performance per model (Plotly, plotly.js inlined, no
  network needed; one trace per metric, the model's last row with a number, hover shows status
  and row count) and the whole table, every column sortable by a click on its header.
* :func:`write_email` — madengine's ``to-email``: every ``*.csv`` of a directory, one ``<h2>`` and
  table each, in one HTML body for mail (``run_results.html``): inline styles only, no script, no
  external resource.

A missing, empty or unreadable CSV is a :class:`MadError` naming the file.
"""
from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import MadError

NUMERIC = ("performance", "n_gpus", "nnodes", "gpus_per_node", "build_duration", "test_duration",
           "data_download_duration", "build_number")
_STATUS_COLOURS = {"SUCCESS": "#1b5e20", "FAILURE": "#b00020", "SKIPPED": "#666666"}


@dataclass(frozen=True)
class Table:
    """A CSV file's header and rows."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]


def read_table(path: Path) -> Table:
    """The CSV at ``path``. Raises MadError when it is missing, empty or not readable as CSV."""
    path = Path(path)
    if not path.is_file():
        raise MadError(f"the CSV file {path} does not exist", where=str(path),
                       fix="give a results file written by a session (perf.csv, perf_super.csv)")
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip() for name in reader.fieldnames or [] if name]
            rows = [{(k or "").strip(): (v or "") for k, v in row.items() if k} for row in reader]
    except (OSError, csv.Error) as error:
        raise MadError(f"the CSV file {path} cannot be read ({error})", where=str(path),
                       fix="give a CSV file with a header line") from None
    if not columns:
        raise MadError(f"the CSV file {path} is empty", where=str(path), fix="give a CSV file with a header line")
    return Table(path, columns, rows)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def chart_spec(table: Table) -> dict[str, object]:
    """The Plotly figure: per metric one bar trace, x = model, y = its last numeric performance."""
    last: dict[tuple[str, str], tuple[float, str, int]] = {}
    for row in table.rows:
        value = _number(row.get("performance", ""))
        if value is None:
            continue
        key = (row.get("metric", ""), row.get("model", ""))
        count = last[key][2] + 1 if key in last else 1
        last[key] = (value, row.get("status", ""), count)
    data = []
    for metric in sorted({metric for metric, _ in last}):
        models = sorted(model for m, model in last if m == metric)
        points = [last[(metric, model)] for model in models]
        data.append({"type": "bar", "name": metric or "(no metric)", "x": models, "y": [p[0] for p in points],
                     "marker": {"color": [_STATUS_COLOURS.get(p[1], "#1f77b4") for p in points]},
                     "text": [f"{p[1]}, {p[2]} row(s)" for p in points],
                     "hovertemplate": "%{x}: %{y} " + (metric or "") + "<br>%{text}<extra></extra>"})
    layout = {"barmode": "group", "margin": {"t": 30, "b": 120}, "yaxis": {"title": {"text": "performance"}},
              "xaxis": {"automargin": True}, "legend": {"title": {"text": "metric"}}}
    return {"data": data, "layout": layout}


def render_html(table: Table) -> str:
    """The page's HTML (about 5 MB, mostly plotly.js). ImportError when plotly or jinja2 is missing."""
    import jinja2
    from plotly.offline import get_plotlyjs

    spec = chart_spec(table)
    environment = jinja2.Environment(loader=jinja2.PackageLoader("pytest_madengine", "templates/report"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    classes = {column: "num" if column in NUMERIC else "" for column in table.columns}
    summary = (f"{len(table.rows)} row(s) from {table.path.name}; generated "
               f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Click a column header to sort.")
    return environment.get_template("results.html.j2").render(
        title=f"{table.path.name} — pytest-madengine results", summary=summary, columns=table.columns,
        rows=table.rows, classes=classes, has_chart=bool(spec["data"]),
        spec_json=json.dumps(spec, separators=(",", ":")).replace("</", "<\\/"), plotly_js=get_plotlyjs())


def write_html(csv_path: Path, output: Path | None = None) -> Path:
    """Write the page for ``csv_path`` to ``output`` (default: the CSV's path with ``.html``)."""
    table = read_table(csv_path)
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
    return (f'<h2 style="font-family:Arial,sans-serif;font-size:16px;">{html.escape(table.path.stem)}</h2>\n'
            f'<table style="border-collapse:collapse;font-family:Arial,sans-serif;">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n")


def write_email(directory: Path, output: Path | None = None) -> Path:
    """Every ``*.csv`` of ``directory`` (sorted) in one mail body; default ``<directory>/run_results.html``.

    Raises MadError when the directory is missing or holds no CSV file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MadError(f"{directory} is not a directory", where=str(directory),
                       fix="give the directory that holds the results CSV files")
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise MadError(f"{directory} holds no .csv file", where=str(directory),
                       fix="give the directory where a session wrote perf.csv")
    sections = "".join(email_section(read_table(path)) for path in files)
    page = ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
            f'<body style="margin:0;padding:12px;color:#222222;">\n{sections}</body></html>\n')
    output = Path(output) if output else directory / "run_results.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
