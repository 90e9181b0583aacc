"""Reading a references file (``--mad-references``, YAML or JSON) into ``references.References``.

The file's shape is documented in ``results.references``. Every problem raises ``MadError``
naming the file and the entry (a usage error before any model runs).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import MadError
from .references import HIGHER, LOWER, Reference, References, Tolerance

_ENTRY_KEYS = {"value", "unit", "metric", "tolerance", "lower", "upper", "direction", "gpu_architecture",
               "n_gpus", "nnodes"}


def load_references(path: Path) -> References:
    """Read and validate a references file (``.json`` as JSON, anything else as YAML)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise MadError(f"cannot read the references file: {error.strerror or error}", where=where,
                       fix="pass an existing YAML or JSON file with --mad-references") from None
    if Path(path).suffix.lower() == ".json":
        try:
            data: object = json.loads(text)
        except ValueError as error:
            raise MadError(f"not valid JSON: {error}", where=where, fix="correct the syntax") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise MadError(f"not valid YAML: {error}", where=where, fix="correct the syntax") from None
    return parse_references(data, where)


def parse_references(data: object, where: str) -> References:
    """Validate already-parsed file content (a mapping of pattern → entry or list of entries)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise MadError(f"the file holds a {type(data).__name__}, not a mapping of model → reference",
                       where=where, fix="write `model_name: {value: 900, tolerance: 5%}` entries at the top level")
    entries = []
    for pattern, body in data.items():
        items = body if isinstance(body, list) else [body]
        for index, item in enumerate(items):
            label = f"{where}: {pattern}" + (f"[{index}]" if isinstance(body, list) else "")
            entries.append(_entry(str(pattern), item, label))
    return References(tuple(entries), where)


def _entry(pattern: str, item: object, where: str) -> Reference:
    if not isinstance(item, Mapping):
        raise MadError("an entry must be a mapping", where=where, fix="write {value: 900, tolerance: 5%}")
    unknown = sorted(set(map(str, item)) - _ENTRY_KEYS)
    if unknown:
        raise MadError(f"unknown key(s) {', '.join(unknown)}", where=where,
                       fix=f"use only {', '.join(sorted(_ENTRY_KEYS))}")
    kind = "regex" if pattern.startswith("re:") else "glob" if any(c in pattern for c in "*?[") else "exact"
    if kind == "regex":
        try:
            re.compile(pattern[3:])
        except re.error as error:
            raise MadError(f"invalid regular expression: {error}", where=where, fix="correct the pattern") from None
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        raise MadError(f"value must be a non-zero number, not {value!r}", where=where, fix="write value: 900")
    direction = str(item.get("direction", HIGHER))
    if direction not in (HIGHER, LOWER):
        raise MadError(f"direction must be higher or lower, not {direction!r}", where=where,
                       fix="write direction: higher (more is better) or direction: lower")
    lower, upper = _tolerance(item, "lower", where), _tolerance(item, "upper", where)
    worse = _tolerance(item, "tolerance", where)
    if worse is not None:
        side = "lower" if direction == HIGHER else "upper"
        if item.get(side) is not None:
            raise MadError(f"both tolerance and {side} bound the {side} side", where=where, fix="keep one of them")
        lower, upper = (worse, upper) if direction == HIGHER else (lower, worse)
    if lower is None and upper is None:
        raise MadError("no tolerance given", where=where, fix="add tolerance: 5% (or lower / upper)")
    unit = str(item.get("unit") or item.get("metric") or "")
    arch = item.get("gpu_architecture")
    return Reference(pattern=pattern, kind=kind, value=float(value), unit=unit, direction=direction, lower=lower,
                     upper=upper, gpu_architecture=None if arch is None else str(arch),
                     n_gpus=_key_int(item, "n_gpus", where), nnodes=_key_int(item, "nnodes", where), where=where)


def _tolerance(item: Mapping[str, object], key: str, where: str) -> Tolerance | None:
    raw = item.get(key)
    if raw is None:
        return None
    text = str(raw).strip()
    percent = text.endswith("%")
    try:
        amount = float(text.rstrip("%").strip()) if not isinstance(raw, bool) else -1.0
    except ValueError:
        amount = -1.0
    if not math.isfinite(amount) or amount < 0:
        raise MadError(f"{key} must be a number ≥ 0, absolute (45) or in percent (\"5%\"), not {raw!r}",
                       where=where, fix=f"write {key}: 5%")
    return Tolerance(amount, percent)


def _key_int(item: Mapping[str, object], key: str, where: str) -> int | None:
    raw = item.get(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise MadError(f"{key} must be a whole number ≥ 1, not {raw!r}", where=where, fix=f"write {key}: 8")
    return raw


# --- judging -------------------------------------------------------------------------------
