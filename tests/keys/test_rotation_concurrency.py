"""The rotation schedule run by several workers at once on PostgreSQL: exactly one rotates
(operations.md "Keys"; ``Keyring.rotate_if_due``)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from keys.encryption import KeyEncryptor
from keys.keyring import Keyring
from keys.models import SigningKey
from tests.private_schema import private_schema

pytestmark = pytest.mark.skipif(
    not os.environ.get("IDP_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="concurrent workers need PostgreSQL (IDP_TEST_DATABASE_URL); on SQLite BEGIN IMMEDIATE serialises them",
)

SCHEMA = "key_rotation_concurrency_test"
WORKERS = 4
EVERY = dt.timedelta(days=90)


@pytest.fixture
def worker_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A key table of its own in a separate schema: these workers really commit."""
    with private_schema(database_url, SCHEMA, [SigningKey.__table__], pool_size=WORKERS) as engine:  # type: ignore[list-item]
        yield sessionmaker(engine, expire_on_commit=False)


def test_workers_racing_on_a_due_rotation_rotate_once(worker_sessions: sessionmaker[Session]) -> None:
    encryptor = KeyEncryptor(os.urandom(32))
    keyring = Keyring(encryptor, cache_seconds=0, algs=("ES256",))
    with worker_sessions.begin() as session:
        keyring.ensure(session)
        long_ago = dt.datetime.now(dt.UTC) - EVERY - dt.timedelta(days=1)
        session.execute(update(SigningKey).values(activated_at=long_ago, created_at=long_ago))
    start, results, errors = threading.Barrier(WORKERS), [], []

    def work() -> None:
        ring = Keyring(encryptor, cache_seconds=0, algs=("ES256",))
        start.wait()
        try:
            with worker_sessions.begin() as session:
                results.append(ring.rotate_if_due(session, every=EVERY, retire_after=dt.timedelta(hours=1)))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and sorted(results) == [False] * (WORKERS - 1) + [True]
    with worker_sessions() as session:
        states = sorted(session.scalars(select(SigningKey.state).where(SigningKey.purpose == "token")))
    assert states == ["current", "next", "retired"]


def test_two_nodes_creating_the_keys_at_once_both_start(worker_sessions: sessionmaker[Session]) -> None:
    """``idp db upgrade`` on two nodes starting together: the second waits on the unique index for
    the first's keys, then gives way to them instead of failing."""
    encryptor = KeyEncryptor(os.urandom(32))
    first_flushed, errors = threading.Event(), []
    first = worker_sessions()
    Keyring(encryptor, cache_seconds=0, algs=("ES256",)).ensure(first)  # inserted, not yet committed
    first_flushed.set()

    def second_node() -> None:
        try:
            with worker_sessions.begin() as session:
                Keyring(encryptor, cache_seconds=0, algs=("ES256",)).ensure(session)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    thread = threading.Thread(target=second_node)
    thread.start()
    _wait_for_a_lock_wait(first)
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and errors == []
    with worker_sessions() as session:
        states = sorted(tuple(row) for row in session.execute(select(SigningKey.purpose, SigningKey.state)))
    assert states == [("ledger", "current"), ("token", "current"), ("token", "next")]


def _wait_for_a_lock_wait(session: Session, timeout: float = 20) -> None:
    """Until another connection waits for one of ours (the second node's insert on the index)."""
    deadline = time.monotonic() + timeout
    with session.get_bind().connect() as probe:  # type: ignore[union-attr]
        while time.monotonic() < deadline:
            waiting = probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                         " AND datname = current_database()")).scalar()
            probe.rollback()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the second node never waited for the first one's keys")
