"""Reading sessions (``store.db.make_reading_sessionmaker``), on SQLite and PostgreSQL: no
transaction around their statements (on SQLite: not the write lock that BEGIN IMMEDIATE takes),
and no statement but a SELECT."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert, text

from idp.models import Agency
from store.db import ReadOnlySessionError, make_reading_sessionmaker, make_sessionmaker, run


def in_transaction(driver_connection: object) -> bool:
    if hasattr(driver_connection, "in_transaction"):  # sqlite3
        return bool(driver_connection.in_transaction)
    return driver_connection.info.transaction_status != 0  # type: ignore[attr-defined]  # psycopg: IDLE


def test_a_reading_session_reads_outside_any_transaction(engine: Engine) -> None:
    with make_reading_sessionmaker(engine)() as session:
        assert session.scalar(text("SELECT 1")) == 1
        assert not in_transaction(session.connection().connection.driver_connection)
    with make_sessionmaker(engine)() as session:  # the pool's next user gets a transaction again
        session.scalar(text("SELECT 1"))
        assert in_transaction(session.connection().connection.driver_connection)


def test_a_reading_session_refuses_to_write(engine: Engine) -> None:
    values = {"id": "agency-never-written", "name": "Never", "sector_identifier": "never.example"}
    with make_reading_sessionmaker(engine)() as session:
        session.add(Agency(**values))
        with pytest.raises(ReadOnlySessionError):
            session.flush()
    with make_reading_sessionmaker(engine)() as session:
        with pytest.raises(ReadOnlySessionError):
            run(session, insert(Agency).values(**values))
        with pytest.raises(ReadOnlySessionError):
            session.execute(text("UPDATE agencies SET name = 'x'"))
    with make_sessionmaker(engine)() as session:
        assert session.get(Agency, "agency-never-written") is None
