"""Dead pooled connections are replaced without a per-request ping (``store/db.py``):

* a connection that sat idle is pinged before use, so a connection the server dropped while
  it was idle never reaches a request;
* a connection in steady use is not pinged; if the server drops it, the request that meets it
  fails with a disconnect error and the pool is invalidated, so the next request reconnects;
* a reading session (userinfo) sends no BEGIN or COMMIT (tests/idp/test_reading_sessions.py: on both backends).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from store import db
from store.db import make_engine, make_reading_sessionmaker, make_sessionmaker


@pytest.fixture
def pooled(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def kill(postgres_url: str, pid: int) -> None:
    admin = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
        pooled: Engine, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = backend_pid(pooled)
    kill(postgres_url, first)
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 0.0)  # instead of waiting 5 s

    assert backend_pid(pooled) != first  # no error: the ping found it dead and the pool reconnected


def test_a_busy_connection_is_not_pinged_and_one_failure_heals_the_pool(
        pooled: Engine, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_SECONDS", 3600.0)  # "busy", however slow this machine is
    pings = []
    pooled.dialect.do_ping = lambda connection: pings.append(connection) or True  # type: ignore[method-assign]
    first = backend_pid(pooled)
    kill(postgres_url, first)

    with pytest.raises(DBAPIError) as failure:  # in steady use: not pinged, so the request meets it
        backend_pid(pooled)
    assert failure.value.connection_invalidated
    assert backend_pid(pooled) != first  # the next one reconnects by itself
    assert pings == []


def test_a_reading_session_runs_each_statement_without_a_transaction(pooled: Engine) -> None:
    with make_reading_sessionmaker(pooled)() as session:
        first = session.scalar(text("SELECT txid_current()"))
        second = session.scalar(text("SELECT txid_current()"))
    assert first != second  # autocommit: each statement is its own transaction, no BEGIN or COMMIT sent
    with make_sessionmaker(pooled)() as session:  # the pool's next user gets an ordinary transaction back
        assert session.scalar(text("SELECT txid_current()")) == session.scalar(text("SELECT txid_current()"))
