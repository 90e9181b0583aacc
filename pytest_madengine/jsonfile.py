"""Reading the user's JSON files (registries, context, manifests, credentials) with clear errors."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import MadError


def read_json(path: Path | str, *, fix: str, where: str | None = None) -> Any:
    """The parsed content of a JSON file; every defect raises MadError naming the file, the line
    and the column. Messages never quote file content (credential files hold secrets)."""
    path = Path(path)
    where = where or str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise MadError("the file does not exist", where=where,
                       fix="check the path (relative paths start at the current directory)") from None
    except OSError as error:
        raise MadError(f"cannot read the file ({error.strerror})", where=where,
                       fix="make it a readable file") from None
    except UnicodeDecodeError as error:
        raise MadError(f"not UTF-8 text (byte {error.start})", where=where,
                       fix="save the file as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise MadError(f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}",
                       where=f"{where}:{error.lineno}:{error.colno}", fix=fix) from None
    except (ValueError, RecursionError):
        raise MadError("JSON nested too deeply (or numbers too large) to read", where=where, fix=fix) from None


def require_object(value: Any, what: str, *, where: str, fix: str, verb: str = "is") -> dict[str, Any]:
    """``value`` when it is a JSON object; else MadError "<what> <verb> a <type>, not an object"."""
    if not isinstance(value, dict):
        raise MadError(f"{what} {verb} a {type(value).__name__}, not an object", where=where, fix=fix)
    return value
