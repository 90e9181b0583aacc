"""Upload results to MongoDB (madengine's ``database`` command): upsert on madengine's key.

Documents: a CSV (perf.csv, perf_super.csv) gives one per row, typed as madengine's pandas reader
types them: a column whose every non-empty cell reads as a number holds numbers, an empty cell is
``null``, a cell holding a JSON object or list (``configs``, ``multi_results``) is that JSON, the
rest text. A JSON file (perf_super.json, perf_entry.json) gives its objects as they are.

The upsert key (``unique_key``) is ``-k/--unique-key`` when given (comma-separated fields), else
``model`` + ``session`` when ``--session`` names one (each document then gets that ``session``), else
madengine's auto-detection (``database/mongodb.py:infer_unique_fields``): the first of ``model``,
``name``, ``id``, ``timestamp``, ``date``, ``pipeline`` present in the first document whose values
are distinct over the first 100 documents, else ``model`` (+ ``timestamp`` when present). A field
that is empty in every sampled document does not count as distinct (madengine would upsert every
document onto one). Documents without any key field are skipped, and counted. With ``upsert`` off,
documents are inserted as they are (madengine's ``--no-upsert``); ``create_index`` adds one
non-unique index on the key fields; ``batch_size`` documents go per bulk write; ``dry_run`` reads,
types and keys the documents without connecting.

The server comes from ``--uri``, else ``MAD_MONGO_URI``, else madengine's ``MONGO_HOST`` /
``MONGO_PORT`` / ``MONGO_USER`` / ``MONGO_PASSWORD`` (default ``mongodb://localhost:27017``). The
password never appears in output or errors (:func:`redact_uri`). pymongo is the client.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from ..errors import MadError
from ..records import JsonValue
from ..results.configs import typed
from .html import read_table

if TYPE_CHECKING:
    import pymongo
    import pymongo.collection

Document = dict[str, JsonValue]
_USERINFO = re.compile(r"^(mongodb(?:\+srv)?://)([^@/]*)@")
UNIQUE_CANDIDATES = ("model", "name", "id", "timestamp", "date", "pipeline")  # madengine's order


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (``mongodb://user:***@host``)."""
    def hide(match: re.Match[str]) -> str:
        user, _, password = match.group(2).partition(":")
        return f"{match.group(1)}{user}{':***' if password else ''}@"
    return _USERINFO.sub(hide, uri)


def resolve_uri(uri: str | None, env: Mapping[str, str]) -> str:
    """The MongoDB URI to use (see the module docstring)."""
    if uri:
        return uri
    if env.get("MAD_MONGO_URI"):
        return env["MAD_MONGO_URI"]
    host, port = env.get("MONGO_HOST", "localhost"), env.get("MONGO_PORT", "27017")
    user, password = env.get("MONGO_USER", ""), env.get("MONGO_PASSWORD", "")
    credentials = f"{quote_plus(user)}:{quote_plus(password)}@" if user else ""
    return f"mongodb://{credentials}{host}:{port}"


def load_documents(path: Path) -> list[Document]:
    """The documents of a CSV or JSON results file. Raises MadError naming the file."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise MadError(f"{path} does not exist", where=str(path), fix="give a results file of a session")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise MadError(f"{path} is not valid JSON ({error})", where=str(path),
                           fix="give perf_super.json or perf_entry.json as a session wrote it") from None
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(item, dict) for item in items):
            raise MadError(f"{path} must hold an object or a list of objects", where=str(path),
                           fix="give perf_super.json or perf_entry.json as a session wrote it")
        return [dict(item) for item in items]
    table = read_table(path)
    numeric = {column for column in table.columns if _numeric_column(row.get(column, "") for row in table.rows)}
    return [{name: typed(value) if name in numeric else _cell(value) for name, value in row.items()}
            for row in table.rows]


def _numeric_column(cells: Iterable[str]) -> bool:
    """Whether every non-empty cell reads as a finite number (pandas would make the column numeric)."""
    values = [typed(cell) for cell in cells if cell.strip()]
    return bool(values) and all(isinstance(value, (int, float)) for value in values)


def _cell(text: str) -> JsonValue:
    if not text.strip():
        return None
    if text.lstrip().startswith(("{", "[")):
        try:
            value: JsonValue = json.loads(text)
            return value
        except ValueError:
            pass
    return text


def infer_unique_fields(documents: list[Document]) -> list[str]:
    """madengine's upsert key for ``documents`` (see the module docstring)."""
    if not documents:
        return []
    available = set(documents[0])
    sample = documents[:100]
    for name in UNIQUE_CANDIDATES:
        if name in available:
            values = [str(doc.get(name)) for doc in sample if doc.get(name) is not None]
            if values and len(set(values)) == len(values):
                return [name]
    if "model" in available:
        return ["model", "timestamp"] if "timestamp" in available else ["model"]
    return []


@dataclass(frozen=True)
class UploadOptions:
    """madengine's ``database`` options (``database/mongodb.py:UploadOptions``)."""

    unique_key: tuple[str, ...] = ()  # () = auto-detect
    session: str | None = None
    upsert: bool = True
    create_index: bool = True
    batch_size: int = 1000
    dry_run: bool = False
    timeout: float = 10.0


@dataclass(frozen=True)
class UploadReport:
    inserted: int
    updated: int
    unchanged: int
    collection: str
    key: tuple[str, ...] = ()
    skipped: int = 0  # documents without any key field
    dry_run: bool = False

    def line(self) -> str:
        key = f" (key: {', '.join(self.key)})" if self.key else " (insert only)"
        skipped = f"; {self.skipped} without a key field skipped" if self.skipped else ""
        if self.dry_run:
            return (f"dry run: {self.inserted + self.updated + self.unchanged} document(s) would go to "
                    f"{self.collection}{key}{skipped}; nothing was sent")
        return (f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged in "
                f"{self.collection}{key}{skipped}")


def prepare(path: Path, options: UploadOptions) -> tuple[list[Document], tuple[str, ...]]:
    """The documents to send and the upsert key (empty with ``upsert`` off). Raises MadError."""
    documents = load_documents(path)
    if not documents:
        raise MadError(f"{path} holds no documents", where=str(path), fix="upload a results file of a session")
    if options.session:
        for document in documents:
            document["session"] = options.session
    if not options.upsert:
        return documents, ()
    key = options.unique_key or (("model", "session") if options.session else tuple(infer_unique_fields(documents)))
    if not key:
        raise MadError(f"no upsert key could be detected in {path} (no model, name, id, timestamp, date or "
                       "pipeline field)", where=str(path), fix="name the key fields with -k/--unique-key, "
                       "or insert without one with --no-upsert")
    return documents, key


def upload(path: Path, *, uri: str, database: str, collection: str, session: str | None = None,
           timeout: float = 10.0, options: UploadOptions | None = None) -> UploadReport:
    """Upsert (or insert) the documents of ``path`` into ``database.collection``. Raises MadError for a
    bad file, no key, an unreachable server or a refused write (password masked)."""
    options = options or UploadOptions(session=session, timeout=timeout)
    documents, key = prepare(path, options)
    keyed = [d for d in documents if any(name in d for name in key)] if key else documents
    target = f"{database}.{collection}"
    if options.dry_run:
        return UploadReport(len(keyed), 0, 0, target, key, len(documents) - len(keyed), dry_run=True)
    with _connected(uri, options.timeout, target) as client:
        inserted, updated = _write(client[database][collection], keyed, key, options)
    return UploadReport(inserted, updated, len(keyed) - inserted - updated, target, key, len(documents) - len(keyed))


@contextmanager
def _connected(uri: str, timeout: float, target: str) -> Iterator[pymongo.MongoClient[Document]]:
    """A pinged client; every pymongo error becomes one MadError with the password masked."""
    import pymongo
    from pymongo.errors import PyMongoError

    shown = redact_uri(uri)
    try:
        client: pymongo.MongoClient[Document] = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000))
    except (PyMongoError, ValueError) as error:
        raise MadError(f"the MongoDB URI {shown} is not valid ({redact_uri(str(error))})", where="--uri",
                       fix="give mongodb://[user:password@]host:port") from None
    try:
        client.admin.command("ping")
        yield client
    except PyMongoError as error:
        problem = redact_uri(str(error)).replace(uri, shown)
        raise MadError(f"MongoDB at {shown} is unreachable or refused the upload ({problem[:300]})", where=target,
                       fix="start the server or correct --uri / MAD_MONGO_URI (user, password, host, port)") from None
    finally:
        client.close()


def _write(target: pymongo.collection.Collection[Document], documents: list[Document], key: tuple[str, ...],
           options: UploadOptions) -> tuple[int, int]:
    """(inserted, updated) after writing ``documents`` in batches of ``options.batch_size``."""
    import pymongo

    if options.create_index and key:
        target.create_index([(name, pymongo.ASCENDING) for name in key])
    inserted = updated = 0
    for start in range(0, len(documents), max(1, options.batch_size)):
        batch = documents[start:start + max(1, options.batch_size)]
        if not key:
            inserted += len(target.insert_many(batch, ordered=True).inserted_ids)
            continue
        result = target.bulk_write([pymongo.UpdateOne({name: d[name] for name in key if name in d}, {"$set": d},
                                                      upsert=True) for d in batch], ordered=True)
        inserted += result.upserted_count
        updated += result.modified_count
    return inserted, updated
