"""The ``configs`` a model reports: the file its args name with ``--config PATH``, loaded.

madengine puts it into ``perf_entry.json`` / ``perf_super.*`` (``utils/config_parser.py``): the
first ``--config <path>`` of the card's args; an absolute path is used as is, a relative one is
looked for in the script's directory, then in each parent up to the package's ``scripts`` dir
(or ``scripts/MAD``, ``scripts/MAD-private``, ``scripts/MAD-internal`` for a submodule), then the
package root. ``.csv`` → a list of row objects (blank rows dropped, empty cells ``null``, numbers as
numbers), ``.json`` → the document, ``.yaml``/``.yml`` → the document. A multiple-results row gets
the CSV row that matches it (:func:`match_config`). A path that is not found, or a format not
listed, is warned about once (naming the card) and gives ``None`` — the run itself is not failed.
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path

from ..cards import ModelCard
from ..errors import WarnOnce
from ..records import JsonValue

CONFIG_ARG = re.compile(r"--config\s+(\S+)")
SUBMODULES = ("MAD", "MAD-private", "MAD-internal")
_warned = WarnOnce()


class ConfigsWarning(UserWarning):
    """A card's ``--config`` file cannot be found or read; its results carry no configs."""


def load_configs(card: ModelCard, package: Path) -> JsonValue:
    """The configs of ``card`` (``None`` when its args name no ``--config``)."""
    match = CONFIG_ARG.search(getattr(card, "full_args", "") or "")
    if not match:
        return None
    name = match.group(1)
    path = find_config(name, Path(package), str(card.scripts))
    if path is None:
        _warn(card, name, f"--config {name} is not found next to the script {card.scripts} or in a parent "
                          "directory up to the package root")
        return None
    try:
        return read_config(path)
    except (OSError, ValueError) as error:
        _warn(card, name, f"--config {path} cannot be read ({error})")
        return None


def find_config(name: str, package: Path, scripts: str) -> Path | None:
    """The config file ``name`` resolves to for a card whose script is ``scripts``, or None."""
    if Path(name).is_absolute():
        return Path(name) if Path(name).is_file() else None
    for directory in candidate_dirs(package, scripts):
        if (directory / name).is_file():
            return directory / name
    return None


def candidate_dirs(package: Path, scripts: str) -> list[Path]:
    """The script's directory, its parents up to the scripts root, and the package root, in order."""
    script = package / scripts
    start = script if script.is_dir() else script.parent
    parts = Path(scripts).parts
    stop = package
    if "scripts" in parts:
        index = parts.index("scripts")
        depth = index + 2 if index + 1 < len(parts) and parts[index + 1] in SUBMODULES else index + 1
        stop = package.joinpath(*parts[:depth])
    found = [start]
    current = start
    while current != stop and stop in current.parents:
        current = current.parent
        found.append(current)
    if package not in found:
        found.append(package)
    return found


def read_config(path: Path) -> JsonValue:
    """A config file's content (see the module docstring). Raises ValueError for a format not listed."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = list(csv.DictReader(handle))
        return [{key.strip(): typed(value) for key, value in row.items() if key}
                for row in rows if any((value or "").strip() for value in row.values())]
    if suffix == ".json":
        loaded: JsonValue = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            document: JsonValue = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ValueError(str(error)) from None
        return document
    raise ValueError(f"the format {suffix or '(no suffix)'} is not one of .csv, .json, .yaml, .yml")


def typed(value: str | None) -> JsonValue:
    """A CSV cell as JSON: ``null`` when empty, an int or float when it reads as one, else the text."""
    text = (value or "").strip()
    if not text:
        return None
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        return number if math.isfinite(number) else text
    return text


def match_config(configs: JsonValue, result: Mapping[str, JsonValue], result_model: str) -> JsonValue:
    """The config of one multiple-results row: a JSON/YAML document as is; from a CSV list, the only
    row, else the first whose ``model`` (``/`` and ``-`` as ``_``, lower case) contains or is
    contained in the row's model (and whose ``benchmark`` equals the row's, when both have one),
    else the first row — madengine's matching."""
    if not isinstance(configs, list):
        return configs
    if len(configs) <= 1:
        return configs[0] if configs else None
    wanted = _normal(result.get("model", result_model))
    for config in configs:
        if not isinstance(config, dict) or "model" not in config:
            continue
        candidate = _normal(config["model"])
        if candidate in wanted or wanted in candidate:
            if "benchmark" in config and "benchmark" in result and config["benchmark"] != result["benchmark"]:
                continue
            return config
    return configs[0]


def _normal(value: JsonValue) -> str:
    return str(value).replace("/", "_").replace("-", "_").lower()


def _warn(card: ModelCard, name: str, message: str) -> None:
    warning = ConfigsWarning(f"model {card.name} ({card.source}): {message}; its results carry no configs. "
                             "Fix: correct the path in the card's args.")
    _warned.warn((str(card.name), name), warning, stacklevel=3)
