"""Database plumbing shared by every package: the declarative base, engines and sessions.

Pure SQLAlchemy (no Flask), so ``consent/`` and ``keys/`` can map their models onto the
same metadata that Alembic migrates.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import CursorResult, DateTime, Engine, Executable, MetaData, create_engine, event, exc
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite stores no offset, so values read back are re-labelled as UTC; naive values are
    refused on the way in, because a naive datetime is a bug waiting to happen.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


READING = "idp_reading"  # execution option of a reading session's connections (make_reading_sessionmaker)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets real transactions and foreign keys.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINTs, so we take it
    over as the SQLAlchemy documentation recommends ("Serializable isolation / Savepoints").
    """
    # Bound parameters carry emails and hashes: keep them out of logs and exception messages.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _make_sqlite_transactional(engine)
        return engine
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine)
    return engine


IDLE_BEFORE_PING_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle, not on every checkout.

    ``pool_pre_ping`` costs a round trip per request (measured: userinfo 3.5 → 2.4 ms of CPU
    without it). A connection in steady use needs no ping: if the server went away under it,
    the failing statement is a disconnect error, which answers that request with a 503 and
    invalidates the whole pool, so the next requests reconnect. An idle connection may have
    been dropped quietly (a restart, a firewall, ``idle_session_timeout``), so it is pinged and
    replaced if dead, as the SQLAlchemy documentation's "pessimistic" recipe does.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING_SECONDS:
            return  # new, or in steady use
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # As pool_pre_ping does: the server probably restarted, so every pooled connection
            # is replaced (this checkout is retried on a new one).
            raise exc.InvalidatePoolError("idle connection is gone") from error


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READING):
            return  # no transaction: each SELECT on its own (make_reading_sessionmaker)
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def run(session: Session, statement: Executable, params: Mapping[str, Any] | None = None) -> CursorResult[Any]:
    """Execute a Core statement on the session's connection, in the session's transaction.

    This skips the ORM's per-statement work: ``Session.execute`` costs ~4x the CPU on a small
    statement (measured: 165 µs against 44 µs on PostgreSQL), and a statement built once at
    import skips its construction too (~100 µs). Pending changes are flushed first, as
    autoflush would; in-memory objects are not updated by an UPDATE run here.
    """
    session.flush()
    return session.connection().execute(statement, params)


def make_sessionmaker(engine: Engine, *, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """``info`` becomes each session's ``Session.info`` (e.g. ``idp.outbox.session_info``)."""
    return sessionmaker(bind=engine, expire_on_commit=False, info=info)


class ReadOnlySessionError(RuntimeError):
    """A reading session was asked to write: a bug, never a user's error."""


def make_reading_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for requests that only read, such as userinfo.

    On PostgreSQL their connections autocommit, so a request of one SELECT is one round trip
    instead of three (BEGIN, the SELECT, COMMIT): measured in ``bench/http --floor``, 1.37 against
    0.93 ms of CPU per request for a token check and one SELECT. Each statement sees its own
    snapshot, so such a session is for reads whose statements need not agree with each other.
    Any statement but a SELECT is refused before it reaches the database, so a reading session
    can never make a write that is not atomic. (The pool resets the isolation level when the
    connection is returned, so the next transactional user gets a transaction again.)
    """
    # SQLite: our connections already autocommit outside BEGIN IMMEDIATE, which READING skips.
    options = {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {}
    reading = engine.execution_options(**options, **{READING: True})  # its own events; the pool is shared

    @event.listens_for(reading, "before_cursor_execute")
    def _only_select(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().split(None, 1)[:1] != ["SELECT"]:
            raise ReadOnlySessionError("a reading session only runs SELECT statements")

    return sessionmaker(bind=reading, expire_on_commit=False, autoflush=False)
