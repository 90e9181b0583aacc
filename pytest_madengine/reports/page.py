"""What the HTML pages (``report to-html``, ``report dashboard``) share: data embedded so that no
value can change how the page parses, the vendored chart library, and the Jinja environment.

Data travels as JSON in a ``<script type="application/json">`` node. :func:`script_json` escapes
``<``, ``>`` and ``&`` as ``\\u003c``/``\\u003e``/``\\u0026`` (so ``</script>``, ``<!--`` and
``<script>`` in a model name cannot end or re-enter the script data states of the HTML parser)
and U+2028/U+2029 (line terminators to older JavaScript engines); everything else on the page
goes through Jinja's autoescape. Charts are drawn by uPlot (MIT, 51 KB minified, vendored in
``templates/vendor`` with its license): the full plotly.js is 4.8 MB and its smallest partial
bundle (``plotly.js-basic-dist-min``) 1.2 MB, too much for a 1.5 MB page of 10,000 results.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources

import jinja2

VENDOR = "templates/vendor"
_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026", 0x2028: "\\u2028",
            0x2029: "\\u2029"}


def script_json(value: object) -> str:
    """``value`` as compact JSON that is inert inside any HTML ``<script>`` element.

    ``value``: JSON-able (dicts, lists, str, finite numbers, None). Raises ValueError for NaN or
    infinity (not JSON: give None instead).
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).translate(_ESCAPES)


@cache
def vendored(name: str) -> str:
    """A vendored file's text (``uPlot.iife.min.js``, ``uPlot.min.css``)."""
    return resources.files("pytest_madengine").joinpath(f"{VENDOR}/{name}").read_text(encoding="utf-8")


def environment(folder: str) -> jinja2.Environment:
    """A Jinja environment for ``templates/<folder>``: autoescaped, undefined names are errors."""
    return jinja2.Environment(loader=jinja2.PackageLoader("pytest_madengine", f"templates/{folder}"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def chart_assets() -> dict[str, str]:
    """Template variables ``chart_js`` and ``chart_css`` (uPlot inlined: the page needs no network)."""
    notice = "/*! uPlot 1.6.32 (c) 2022 Leon Sorokin, MIT License (templates/vendor/uPlot.LICENSE) */\n"
    return {"chart_js": notice + vendored("uPlot.iife.min.js"), "chart_css": vendored("uPlot.min.css")}
