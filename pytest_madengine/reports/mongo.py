"""Upload results to MongoDB (madengine's ``database`` command): upsert by model + session.

Documents: a CSV (perf.csv, perf_super.csv) gives one per row, its cells as strings except
``performance``, durations and counts, which become numbers when they read as one; a JSON file
(perf_super.json, perf_entry.json) gives its objects as they are. Each document gets ``session``
and is upserted on ``(model, session)``: uploading the same file twice changes nothing, a later
session adds documents. ``session`` is ``--session`` when given, else the row's own
``<pipeline or "local">-<build_number>`` (madengine's CI identifies a run by these two), so a
cumulative perf.csv keeps each row in its own session.

The server comes from ``--uri``, else ``MAD_MONGO_URI``, else madengine's ``MONGO_HOST`` /
``MONGO_PORT`` / ``MONGO_USER`` / ``MONGO_PASSWORD`` (default ``mongodb://localhost:27017``). The
password never appears in output or errors (:func:`redact_uri`). pymongo is the client.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

from ..errors import MadError
from ..records import JsonValue
from ..results.configs import typed
from .html import NUMERIC, read_table

Document = dict[str, JsonValue]
_USERINFO = re.compile(r"^(mongodb(?:\+srv)?://)([^@/]*)@")


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
    return [{name: typed(value) if name in NUMERIC else value for name, value in row.items()}
            for row in table.rows]


def session_of(document: Document, session: str | None) -> str:
    if session:
        return session
    return f"{document.get('pipeline') or 'local'}-{document.get('build_number') or 0}"


@dataclass(frozen=True)
class UploadReport:
    inserted: int
    updated: int
    unchanged: int
    collection: str

    def line(self) -> str:
        return (f"{self.inserted} inserted, {self.updated} updated, {self.unchanged} unchanged in "
                f"{self.collection}")


def upload(path: Path, *, uri: str, database: str, collection: str, session: str | None = None,
           timeout: float = 10.0) -> UploadReport:
    """Upsert the documents of ``path`` into ``database.collection``. Raises MadError for a bad file,
    a document without ``model``, an unreachable server or a refused write (password masked)."""
    import pymongo
    from pymongo.errors import PyMongoError

    documents = load_documents(path)
    for index, document in enumerate(documents):
        if not document.get("model"):
            raise MadError(f"record {index} has no 'model'", where=str(path),
                           fix="upload a results file of a session (every row names its model)")
        document["session"] = session_of(document, session)
    shown = redact_uri(uri)
    try:
        client: pymongo.MongoClient[Document] = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000))
    except (PyMongoError, ValueError) as error:
        raise MadError(f"the MongoDB URI {shown} is not valid ({redact_uri(str(error))})", where="--uri",
                       fix="give mongodb://[user:password@]host:port") from None
    try:
        client.admin.command("ping")
        target = client[database][collection]
        target.create_index([("model", pymongo.ASCENDING), ("session", pymongo.ASCENDING)], unique=True)
        operations = [pymongo.UpdateOne({"model": d["model"], "session": d["session"]}, {"$set": d}, upsert=True)
                      for d in documents]
        result = target.bulk_write(operations, ordered=True) if operations else None
    except PyMongoError as error:
        problem = redact_uri(str(error)).replace(uri, shown)
        raise MadError(f"MongoDB at {shown} is unreachable or refused the upload ({problem[:300]})",
                       where=f"{database}.{collection}",
                       fix="start the server or correct --uri / MAD_MONGO_URI (user, password, host, port)") from None
    finally:
        client.close()
    inserted = result.upserted_count if result else 0
    updated = result.modified_count if result else 0
    return UploadReport(inserted, updated, len(documents) - inserted - updated, f"{database}.{collection}")

