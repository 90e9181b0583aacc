"""The end-of-run summary table (rich): model, status, performance, metric, duration, GPUs, reason."""
from __future__ import annotations

import io
from typing import IO, Any

from ...records import FAILURE, SKIPPED, SUCCESS, ModelResult

_STATUS_STYLE = {SUCCESS: "bold green", FAILURE: "bold red", SKIPPED: "yellow"}
MAX_REASON = 120


def render_summary(results: list[ModelResult], *, file: IO[str] | None = None,
                   width: int | None = None) -> str:
    """Print the summary to ``file`` (colours only if it is a terminal) and return it as plain text.

    Without ``file`` nothing is printed; the plain text is only returned.
    """
    from rich.console import Console

    target = file if file is not None else io.StringIO()
    console = Console(file=target, width=width or _default_width(file), record=True,
                      highlight=False, soft_wrap=False)
    console.print(_table(results))
    console.print(totals_line(results))
    return console.export_text(styles=False)


def totals_line(results: list[ModelResult]) -> str:
    counts = {status: sum(1 for r in results if r.status == status) for status in (SUCCESS, FAILURE, SKIPPED)}
    seconds = sum(r.build_duration + r.test_duration for r in results)
    noun = "model run" if len(results) == 1 else "model runs"
    return (f"{len(results)} {noun}: {counts[SUCCESS]} passed, {counts[FAILURE]} failed, "
            f"{counts[SKIPPED]} skipped; build + test time {seconds:.1f} s")


_COLUMNS = ("model", "status", "performance", "metric", "duration", "gpus", "reason")
_CAPS = {"model": 60, "metric": 28, "gpus": 16}  # widest a column may insist on


def _table(results: list[ModelResult]) -> Any:
    from rich.table import Table

    rows: list[list[Any]] = []
    for result in results:
        rows.append(_cells(result.model, result.status, result.performance, result.metric,
                           f"{result.test_duration:.1f} s", ",".join(str(g) for g in result.gpus),
                           _reason(result)))
        rows += [_cells(f"  {row['model']}", row["status"], row["performance"], row["metric"])
                 for row in _extra_rows(result)]
    table = Table(title="pytest-madengine results", title_justify="left", show_lines=False)
    # Every column but the reason keeps its content whole on one line; the reason absorbs a
    # narrow terminal (cut with an ellipsis: the failure report above has the full text).
    for index, name in enumerate(_COLUMNS[:-1]):
        widest = max([len(name)] + [row[index].cell_len for row in rows])
        table.add_column(name, no_wrap=True, min_width=min(widest, _CAPS.get(name, widest)),
                         justify="right" if name in ("performance", "duration") else "left")
    table.add_column("reason", no_wrap=True, overflow="ellipsis", ratio=1)
    for row in rows:
        table.add_row(*row)
    return table


def _cells(model: str, status: str, *rest: str) -> list[Any]:
    """Plain Text cells: model names and reasons may hold '[...]', which rich would read as markup."""
    from rich.text import Text

    cells = [Text(model), Text(status, style=_STATUS_STYLE.get(status, "")), *(Text(v) for v in rest)]
    return cells + [Text("")] * (7 - len(cells))


def _reason(result: ModelResult) -> str:
    if result.status == SUCCESS:
        return ""
    reason = " ".join(result.reason.split())
    text = f"[{result.phase}] {reason}" if result.phase else reason
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "..."


def _extra_rows(result: ModelResult) -> list[dict[str, str]]:
    """Multiple-results runs: one indented line per result row."""
    return result.rows if len(result.rows) > 1 else []


def _default_width(file: IO[str] | None) -> int | None:
    # A real terminal knows its width; a file or buffer gets a width wide enough for the reason.
    return None if file is not None and getattr(file, "isatty", lambda: False)() else 160


class SummarySink:
    """The results table of the terminal summary, rendered once every result is in."""

    def __init__(self, width: int | None) -> None:
        self.width = width  # columns; None = the width of the terminal (or 160 off a terminal)
        self.results: list[ModelResult] = []

    def record(self, result: ModelResult) -> None:
        self.results.append(result)

    def finish(self) -> list[str]:
        if not self.results:
            return []
        return render_summary(self.results, width=self.width).rstrip("\n").split("\n")
