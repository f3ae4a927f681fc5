"""Concurrent writers on PostgreSQL: sequence numbers have no gaps and no leaf index is taken twice,
even when some writers roll back (consent-ledger.md "Appends are serialised…")."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from consent.audit import audit
from consent.events import EventType
from consent.ledger import CheckpointPolicy, Ledger
from consent.models import LedgerCheckpoint, LedgerEntry, LedgerHead, LedgerNode, LedgerReceipt, LedgerSubject
from tests.consent.conftest import MemoryKeys
from tests.private_schema import private_schema

pytestmark = pytest.mark.skipif(
    not os.environ.get("IDP_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="concurrent writers need PostgreSQL (IDP_TEST_DATABASE_URL); on SQLite BEGIN IMMEDIATE serialises them",
)

SCHEMA = "ledger_concurrency_test"
WRITERS, APPENDS = 6, 30
TABLES = [model.__table__ for model in (LedgerHead, LedgerEntry, LedgerNode, LedgerSubject, LedgerReceipt,
                                         LedgerCheckpoint)]


@pytest.fixture
def writer_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A ledger of its own in a separate schema: these writers really commit."""
    with private_schema(database_url, SCHEMA, TABLES, pool_size=WRITERS) as engine:  # type: ignore[arg-type]
        with engine.begin() as connection:
            connection.execute(insert(LedgerHead).values(id=1, size=0, frontier=b"", checkpoint_size=0))
        yield sessionmaker(engine, expire_on_commit=False)


class Abandon(Exception):
    """A writer gives up after appending: its transaction rolls back."""


def _write(sessions: sessionmaker[Session], ledger: Ledger, writer: int, start: threading.Barrier,
           errors: list[BaseException]) -> None:
    start.wait()
    for n in range(APPENDS):
        try:
            with sessions.begin() as session:
                ledger.append(session, EventType.CONSENT_EXPIRED,
                              {"subject": f"w{writer}", "agency": f"n{n}", "scopes": []})
                if n % 7 == 3:
                    raise Abandon()
        except Abandon:
            continue
        except BaseException as error:  # reported by the test
            errors.append(error)


def test_concurrent_writers_leave_no_gaps_and_no_duplicate_indices(writer_sessions: sessionmaker[Session]) -> None:
    ledger = Ledger(MemoryKeys(), "test.example/consent-ledger", CheckpointPolicy(entries=16, seconds=3600))
    start, errors = threading.Barrier(WRITERS), []
    threads = [threading.Thread(target=_write, args=(writer_sessions, ledger, w, start, errors))
               for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    committed = WRITERS * sum(1 for n in range(APPENDS) if n % 7 != 3)
    with writer_sessions() as session:
        rows = session.execute(select(LedgerEntry.seq, LedgerEntry.leaf).order_by(LedgerEntry.seq)).all()
        assert [seq for seq, _leaf in rows] == list(range(committed))
        assert [json.loads(leaf)["seq"] for _seq, leaf in rows] == list(range(committed))
        per_writer = [json.loads(leaf)["subject"] for _seq, leaf in rows]
        assert all(per_writer.count(f"w{w}") == committed // WRITERS for w in range(WRITERS))
        report = audit(session, ledger)
        assert report.ok, report.problems
        assert report.checkpoints >= committed // 16
