"""History backends by URL: SQLite files and a real PostgreSQL server (tests/infra/start-postgres.sh),
one schema, credentials that never show, and many writers at once."""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from pytest_madengine.errors import MadError
from pytest_madengine.history.backend import parse_location, redact_urls
from pytest_madengine.history.store import HistoryStore, Match, SessionInfo
from tests.infra.fixtures import Postgres

from .helpers import add_session, result

LLAMA = Match("llama", "gfx942", "8", "1")


@pytest.mark.parametrize(("text", "path"), [
    ("h.sqlite", "h.sqlite"), ("sqlite:///rel/h.sqlite", "rel/h.sqlite"), ("sqlite:////abs/h.sqlite", "/abs/h.sqlite"),
])
def test_sqlite_locations(text: str, path: str) -> None:
    location = parse_location(text)
    assert location.is_sqlite and location.path == Path(path).absolute() and location.shown == str(Path(path).absolute())


def test_postgres_locations_hide_the_password() -> None:
    location = parse_location("postgres://ci:s3cr3t@db.example:5433/mad")
    assert not location.is_sqlite and location.url.drivername == "postgresql+psycopg"
    assert location.shown == "postgresql://ci:***@db.example:5433/mad" and "s3cr3t" not in repr(location.shown)
    assert redact_urls("--mad-history=postgresql://ci:s3cr3t@db/mad x") == "--mad-history=postgresql://ci:***@db/mad x"


@pytest.mark.parametrize(("text", "words"), [
    ("mysql://u@h/db", "backend 'mysql' is not supported"),
    ("postgresql://ci:pw@db.example:5432", "names no database"),
    ("sqlite://", "names no file"),
])
def test_bad_locations_name_the_option_and_never_the_password(text: str, words: str) -> None:
    with pytest.raises(MadError, match=words) as raised:
        parse_location(text)
    assert "--mad-history" in raised.value.message and ":pw@" not in raised.value.message


def test_postgres_round_trip_baselines_and_masked_command_line(postgres: Postgres) -> None:
    url = postgres.create_database("roundtrip")
    with HistoryStore(url) as store:
        assert postgres.password not in store.where and "***" in store.where
        for day, value in enumerate(("900", "950", "1000")):
            add_session(store, f"s{day}", 1000.0 + day, result("llama", value), result("bert", status="FAILURE"))
        store.begin_session(SessionInfo(id="live", started=5000.0, pytest_args=("--mad-history", url)))
        assert store.baseline("last", LLAMA).sessions == ("s2",)  # type: ignore[union-attr]
        assert store.baseline("mean:2", LLAMA).value == 975  # type: ignore[union-attr]
        [latest, *_] = store.sessions()
        assert latest.info.pytest_args == ("--mad-history", url.replace(postgres.password, "***"))
        assert [(s.rows, s.failures) for s in store.sessions()[1:]] == [(2, 1)] * 3
        assert store.models() == ["bert", "llama"]
    with HistoryStore(url) as again:  # at the head revision: opened without migrating
        assert len(again.sessions()) == 4


def test_postgres_password_from_pgpassword_and_errors_without_it(postgres: Postgres,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    bare = postgres.url(password=False)
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    monkeypatch.setenv("PGPASSFILE", os.devnull)
    with HistoryStore(bare) as store:
        assert store.sessions() is not None
    monkeypatch.setenv("PGPASSWORD", "wrong-" + postgres.password)
    with pytest.raises(MadError, match="cannot open the history.*password authentication failed") as raised:
        HistoryStore(bare)
    assert postgres.password not in raised.value.message and "PGPASSWORD" in raised.value.message
    with pytest.raises(MadError, match="cannot open the history") as raised:
        HistoryStore(postgres.url().replace(f":{postgres.port}/", ":1/"))
    assert postgres.password not in raised.value.message


def test_postgres_pgpass_file(postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:*:{postgres.user}:{postgres.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    with HistoryStore(postgres.url(password=False)) as store:
        assert isinstance(store.sessions(), list)


def _writer(url: str, session_id: str, count: int) -> None:
    with HistoryStore(url, timeout=60) as store:
        store.begin_session(SessionInfo(id=session_id, started=1000.0))
        for index in range(count):
            store.add_result(session_id, result(f"m{index}", str(index), "1"))
        store.end_session(session_id, 2000.0)


def test_eight_writers_at_once_on_a_fresh_database_lose_no_row(postgres: Postgres) -> None:
    url = postgres.create_database("concurrent")  # empty: the eight also race to create the schema
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(url, f"s{n}", 50)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
        assert worker.exitcode == 0
    with HistoryStore(url) as store:
        assert {item.info.id: item.rows for item in store.sessions()} == {f"s{n}": 100 for n in range(8)}


def test_a_shared_database_with_other_tables_takes_the_history(postgres: Postgres) -> None:
    import psycopg

    url = postgres.create_database("shared")
    with psycopg.connect(host=postgres.host, port=postgres.port, user=postgres.user, password=postgres.password,
                         dbname="shared", autocommit=True) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num text)")  # another application's migrations
        conn.execute("INSERT INTO alembic_version VALUES ('abc123')")
        conn.execute("CREATE TABLE builds (id int)")
    with HistoryStore(url) as store:
        add_session(store, "s1", 1000.0, result("llama", "900"))
        assert [item.info.id for item in store.sessions()] == ["s1"]
