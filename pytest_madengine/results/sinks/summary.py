"""The end-of-run summaries (rich): the results of a run session, the images of a build-only one.

Both read in an 80-column CI log (Jenkins, GitLab: no terminal) as well as on a wide terminal. The
first two columns, the model's name and its status, are always shown whole. When the width runs
short, the secondary columns go first and the reason wraps; when even the name, the status and a
reason of ``REASON_MIN`` columns do not fit side by side, each model becomes a short block of lines
instead (name; status and the other values; reason).
"""
from __future__ import annotations

import contextlib
import io
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ...fileio import printable
from ...records import FAILURE, SKIPPED, SUCCESS, ModelResult

MAX_REASON = 120
REASON_MIN = 20  # the narrowest a wrapped reason column may get before the block layout is used
MIN_WIDTH = 30  # narrower consoles are laid out as if this wide (lines overflow rather than fold per letter)

# What a build-only item did with its image; ``build_reason`` writes it into ModelResult.reason.
BUILT, REUSED, REFERENCED = "built", "reused", "referenced"
_NOTES = {BUILT: "built", REUSED: "reused (inputs unchanged)",
          REFERENCED: "referenced (batch manifest: build_new false)"}
_PUSHED = "; pushed to "

_STYLE = {SUCCESS: "bold green", FAILURE: "bold red", SKIPPED: "yellow",
          BUILT.upper(): "bold green", REUSED.upper(): "green", REFERENCED.upper(): "green"}

Row = dict[str, str]  # column name -> plain text; key "indent" marks a sub-row


@dataclass(frozen=True)
class _View:
    """The columns of one summary: ``columns[0]`` names a row, ``columns[1]`` is its status."""

    title: str
    columns: tuple[str, ...]
    droppable: tuple[str, ...]  # left out in this order when the width runs short
    right: tuple[str, ...] = ()  # right-justified columns
    wrap: str = "reason"  # the one column that wraps
    labels: tuple[str, ...] = ()  # columns whose value the block layout prefixes with the column name


_RUN = _View("pytest-madengine results",
             ("model", "status", "performance", "metric", "baseline", "change", "spread", "nodes", "duration",
              "gpus", "reason"),
             droppable=("gpus", "duration", "nodes", "spread"), right=("performance", "baseline", "change", "duration"),
             labels=("baseline", "change", "spread", "gpus"))
_BUILD = _View("pytest-madengine images (build only, nothing run)",
               ("model", "build", "image", "duration", "pushed to", "reason"),
               droppable=("duration", "image"), right=("duration",), labels=("pushed to",))


def render_summary(results: list[ModelResult], *, file: IO[str] | None = None,
                   width: int | None = None) -> str:
    """Print the run summary to ``file`` (colours only if it is a terminal) and return it as plain text.

    Without ``file`` nothing is printed; the plain text is only returned.
    """
    rows = [row for result in results for row in _run_rows(result)]
    return _render(_RUN, rows, totals_line(results), file, width)


def render_build_summary(results: list[ModelResult], *, file: IO[str] | None = None,
                         width: int | None = None) -> str:
    """The summary of a ``--mad-build-only`` session: per model its image built / reused / pushed / failed."""
    return _render(_BUILD, [_build_row(result) for result in results], build_totals_line(results), file, width)


def totals_line(results: list[ModelResult]) -> str:
    counts = Counter(result.status for result in results)
    seconds = sum(r.build_duration + r.test_duration for r in results)
    noun = "model run" if len(results) == 1 else "model runs"
    phases = Counter(result.phase or "run" for result in results if result.status == FAILURE)
    by_phase = f" ({', '.join(f'{n} {phase}' for phase, n in sorted(phases.items()))})" if phases else ""
    return (f"{len(results)} {noun}: {counts[SUCCESS]} passed, {counts[FAILURE]} failed{by_phase}, "
            f"{counts[SKIPPED]} skipped; build + test time {seconds:.1f} s")


def build_totals_line(results: list[ModelResult]) -> str:
    outcomes = [build_outcome(result) for result in results]
    counts = Counter(outcome for outcome, _ in outcomes)
    parts = [f"{counts[BUILT]} built", f"{counts[REUSED]} reused"]
    parts += [f"{counts[REFERENCED]} referenced"] if counts[REFERENCED] else []
    parts += [f"{sum(1 for _, pushed in outcomes if pushed)} pushed", f"{counts[FAILURE]} failed"]
    parts += [f"{counts[SKIPPED]} skipped"] if counts[SKIPPED] else []
    noun = "model" if len(results) == 1 else "models"
    seconds = sum(result.build_duration for result in results)
    return f"{len(results)} {noun} built only (none run): images {', '.join(parts)}; build time {seconds:.1f} s"


def build_reason(outcome: str, pushed_to: str = "") -> str:
    """The reason of a successful build-only result, e.g. ``reused (inputs unchanged); pushed to reg/x:tag``."""
    return _NOTES[outcome] + (f"{_PUSHED}{pushed_to}" if pushed_to else "")


def build_outcome(result: ModelResult) -> tuple[str, str]:
    """``(outcome, pushed_to)`` of a build-only result; the outcome is its status when it did not succeed."""
    if result.status != SUCCESS:
        return result.status, ""
    note, _, pushed_to = result.reason.partition(_PUSHED)
    outcome = next((name for name, text in _NOTES.items() if text == note), BUILT)
    return outcome, pushed_to


# --- rows ----------------------------------------------------------------------------------------

def _run_rows(result: ModelResult) -> list[Row]:
    """One row per item (its name with its variant), then one indented sub-row per result row
    (multiple results, repeated runs: ``run 2``)."""
    props = result.properties
    main = {"model": item_name(result), "status": result.status, "performance": result.performance,
            "metric": result.metric, "baseline": props.get("baseline", ""), "change": _change(props),
            "spread": _spread(props), "nodes": _nodes(props), "duration": f"{result.test_duration:.1f} s",
            "gpus": ",".join(str(g) for g in result.gpus), "reason": _reason(result)}
    rows = _extra_rows(result)
    runs = int(props.get("repeat_count") or 1)
    per_run = max(1, len(rows) // runs)
    subs = [{"model": _sub_name(row["model"], index // per_run + 1, runs, per_run), "status": row["status"],
             "performance": row["performance"], "metric": row["metric"], "indent": "1"}
            for index, row in enumerate(rows)]
    return [main, *subs]


def item_name(result: ModelResult) -> str:
    """The test item's name (``model[ubuntu.amd]`` for a Dockerfile variant), else the model's."""
    return result.nodeid.rsplit("::", 1)[-1] if result.nodeid else result.model


def _sub_name(model: str, run: int, runs: int, per_run: int) -> str:
    if runs <= 1:
        return model
    return f"run {run}" if per_run == 1 else f"{model} (run {run})"


def _change(props: dict[str, str]) -> str:
    """The signed relative change against the baseline or reference, e.g. ``-3.20 %``."""
    change = props.get("relative_change", "")
    return f"{'+' if change and not change.startswith('-') else ''}{change} %" if change else ""


def _spread(props: dict[str, str]) -> str:
    """Repeated runs: ``790-870, CV 3.70 %`` (the performance column holds their median)."""
    if int(props.get("repeat_count") or 1) < 2:
        return ""
    return f"{props.get('repeat_min')}-{props.get('repeat_max')}, CV {props.get('repeat_cv')} %"


def _nodes(props: dict[str, str]) -> str:
    """Multi-node runs: how the nodes' values were combined, e.g. ``2 nodes, sum``."""
    method = props.get("aggregation.method", "")
    return f"{props.get('aggregation.nodes', '?')} nodes, {method}" if method else ""


def _build_row(result: ModelResult) -> Row:
    outcome, pushed_to = build_outcome(result)
    return {"model": result.model, "build": outcome.upper(), "image": result.image,
            "duration": f"{result.build_duration:.1f} s", "pushed to": pushed_to, "reason": _reason(result)}


def _reason(result: ModelResult) -> str:
    if result.status == SUCCESS:
        return ""
    reason = " ".join(printable(result.reason).split())
    text = f"[{result.phase}] {reason}" if result.phase else reason
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "..."


def _extra_rows(result: ModelResult) -> list[dict[str, str]]:
    """Multiple-results runs: one indented line per result row."""
    return result.rows if len(result.rows) > 1 else []


def _cell(view: _View, row: Row, name: str) -> str:
    value = row.get(name, "")
    return f"  {value}" if name == view.columns[0] and row.get("indent") else value


# --- layout --------------------------------------------------------------------------------------

_preload: threading.Thread | None = None


def preload_rich() -> None:
    """Import rich (0.1-0.3 s) in a thread, once per process, while models run: the summary is drawn
    at the end and need not wait for it then (issue 22.5). Started by the first result, not before:
    a thread importing beside the first container's start delays it (GIL). ``_render`` joins it."""
    global _preload
    if _preload is None:
        _preload = threading.Thread(target=_import_rich, name="mad-preload-rich", daemon=True)
        _preload.start()


def _import_rich() -> None:
    with contextlib.suppress(ImportError):  # _render reports a broken install
        import rich.console  # noqa: F401
        import rich.table  # noqa: F401


def _render(view: _View, rows: list[Row], totals: str, file: IO[str] | None, width: int | None) -> str:
    if _preload is not None:
        _preload.join()  # never two threads importing one module
    from rich.console import Console

    target = file if file is not None else io.StringIO()
    console = Console(file=target, width=width or _default_width(file), record=True,
                      highlight=False, soft_wrap=False)
    console.width = max(console.width, MIN_WIDTH)
    widths = _plan(view, rows, console.width)
    console.print(_table(view, rows, widths) if widths else _blocks(view, rows))
    console.print(totals, markup=False)
    return "".join(line.rstrip() + "\n" for line in console.export_text(styles=False).splitlines())


def _plan(view: _View, rows: list[Row], width: int) -> dict[str, int] | None:
    """Column widths of a table that fits ``width`` with every cell but the reason whole, or None.

    Columns after the status that are empty in every row are left out; then the secondary ones, one by
    one (``view.droppable``), until the reason gets at least
    ``REASON_MIN`` columns (or all of its text); None when even the fewest columns do not fit.
    """
    from rich.cells import cell_len

    natural = {name: max([cell_len(name)] + [cell_len(_cell(view, row, name)) for row in rows])
               for name in view.columns}
    shown = [*view.columns[:2], *(name for name in view.columns[2:] if any(row.get(name) for row in rows))]
    for count in range(len(view.droppable) + 1):
        names = [name for name in shown if name not in view.droppable[:count]]
        widths = {name: natural[name] for name in names}
        spare = width - (3 * len(names) + 1) - sum(w for name, w in widths.items() if name != view.wrap)
        if view.wrap not in widths:
            if spare >= 0:
                return widths
        elif spare >= min(natural[view.wrap], REASON_MIN):
            widths[view.wrap] = min(natural[view.wrap], spare)
            return widths
    return None


def _table(view: _View, rows: list[Row], widths: dict[str, int]) -> Any:
    from rich.table import Table

    table = Table(title=view.title, title_justify="left")
    for name, width in widths.items():
        table.add_column(name, width=width, no_wrap=name != view.wrap, overflow="fold",
                         justify="right" if name in view.right else "left")
    for row in rows:
        table.add_row(*(_text(view, name, _cell(view, row, name)) for name in widths))
    return table


def _blocks(view: _View, rows: list[Row]) -> Any:
    """The narrow layout: per row its name, then status and the other values, then the reason."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    name, status, *others = view.columns
    parts: list[Any] = [Text(view.title, style="italic")]
    for row in rows:
        indent = 2 if row.get("indent") else 0
        values = [Text(f"{column} {row[column]}" if column in view.labels else row[column])
                  for column in others if column != view.wrap and row.get(column)]
        details = Text("  ").join([_text(view, status, row[status]), *values])
        lines = [Text(row[name], style="bold"), details] + ([Text(row[view.wrap])] if row.get(view.wrap) else [])
        parts += [Padding(line, (0, 0, 0, indent + (4 if index else 0)), expand=False)
                  for index, line in enumerate(lines)]
    return Group(*parts)


def _text(view: _View, column: str, value: str) -> Any:
    """A plain Text cell: model names and reasons may hold '[...]', which rich would read as markup."""
    from rich.text import Text

    return Text(value, style=_STYLE.get(value, "") if column == view.columns[1] else "", overflow="fold")


def _default_width(file: IO[str] | None) -> int | None:
    # A real terminal knows its width; a file or buffer gets a width wide enough for the reason.
    return None if file is not None and getattr(file, "isatty", lambda: False)() else 160


class SummarySink:
    """The results table of the terminal summary, rendered once every result is in. A build-only
    session (``manifest`` given) tells what happened to each image and where the manifest went."""

    def __init__(self, width: int | None, *, manifest: Path | None = None) -> None:
        self.width = width  # columns; None = the width of the terminal (or 160 off a terminal)
        self.manifest = manifest
        self.results: list[ModelResult] = []

    def record(self, result: ModelResult) -> None:
        self.results.append(result)
        preload_rich()  # the later models (or xdist workers) run meanwhile; never before the first

    def finish(self) -> list[str]:
        if not self.results:
            return []
        render = render_summary if self.manifest is None else render_build_summary
        lines = render(self.results, width=self.width).rstrip("\n").split("\n")
        if self.manifest is not None:
            lines.append(f"build manifest written to {self.manifest}")
        notes = dict.fromkeys(note for result in self.results for note in result.notes)
        return lines + [f"note: {printable(note)}" for note in notes]
