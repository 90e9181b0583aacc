"""Child process that runs one ``get_models_json.py`` and prints its cards as JSON.

Usage: ``python -m pytest_madengine.discovery._child SCRIPT DIRNAME``. Standard library only,
so it starts fast. File descriptor 1 is pointed at stderr while the script runs (its prints and
those of any program it starts go to stderr); the JSON list goes to the original stdout.
A problem with the script's result exits with ``CONTRACT_EXIT`` and one line after ``MARKER``
on stderr; a crash exits 1 with Python's traceback on stderr.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from typing import Any

MARKER = "pytest-madengine-runner: "
CONTRACT_EXIT = 3


class ContractError(Exception):
    pass


def _load(script: str) -> Any:
    spec = importlib.util.spec_from_file_location("get_models_json", script)
    if spec is None or spec.loader is None:
        raise ContractError(f"cannot load {script} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules["get_models_json"] = module
    spec.loader.exec_module(module)
    return module


def _as_dict(model: Any, index: int, dirname: str) -> dict[str, Any]:
    if isinstance(model, dict):
        return dict(model)
    if not callable(getattr(model, "to_dict", None)):
        raise ContractError(f"item {index} of list_models() is a {type(model).__name__}, "
                            "not a CustomModel or a dict")
    short_name = getattr(model, "name", "")
    # madengine calls update_model() after prefixing the name, so hooks see the full name.
    if callable(getattr(model, "update_model", None)):
        model.name = f"{dirname}/{short_name}"
        model.update_model()
        model.name = short_name
    data = model.to_dict()
    if not isinstance(data, dict):
        raise ContractError(f"to_dict() of item {index} returned a {type(data).__name__}, not a dict")
    return data


def list_cards(script: str, dirname: str) -> list[dict[str, Any]]:
    module = _load(script)
    list_models = getattr(module, "list_models", None)
    if not callable(list_models):
        raise ContractError("the script defines no list_models() function")
    models = list_models()
    if not isinstance(models, (list, tuple)):
        raise ContractError(f"list_models() returned a {type(models).__name__}, not a list")
    return [_as_dict(model, index, dirname) for index, model in enumerate(models)]


def main(argv: list[str]) -> int:
    script, dirname = argv
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    sys.argv = [script]
    try:
        cards = list_cards(script, dirname)
        text = json.dumps(cards, default=str)
    except ContractError as error:
        sys.stderr.write(f"\n{MARKER}{error}\n")
        return CONTRACT_EXIT
    except Exception as error:  # noqa: BLE001 - the script's own error: show its frames, not ours
        _print_script_traceback(error)
        return 1
    sys.stderr.flush()
    with os.fdopen(real_stdout, "w", encoding="utf-8") as out:
        out.write(text)
    return 0


def _print_script_traceback(error: BaseException) -> None:
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if frame.filename != __file__ and not frame.filename.startswith("<frozen")]
    sys.stderr.write("Traceback (most recent call last):\n")
    sys.stderr.write("".join(traceback.format_list(frames)))
    sys.stderr.write("".join(traceback.format_exception_only(type(error), error)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
