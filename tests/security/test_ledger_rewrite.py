"""Threat: rewriting the consent ledger (consent-ledger.md).

Mitigation: any change to a stored entry or checkpoint is detected by the audit behind
``idp ledger verify`` (its audit); proofs are served from the same verified tree.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from consent.audit import audit
from consent.events import EventType
from consent.ledger import Ledger
from consent.models import LedgerCheckpoint, LedgerEntry
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.services import Services


@pytest.fixture
def ledger(db_session: Session, settings: Settings, base_services: Services) -> Ledger:
    ledger = ledger_for(settings, base_services.keyring)
    for i in range(5):
        ledger.append(db_session, EventType.CONSENT_EXPIRED, {"subject": f"s{i}", "agency": f"a{i}", "scopes": []})
    ledger.checkpoint(db_session)
    db_session.commit()
    assert audit(db_session, ledger).ok
    return ledger


def _last_seq(db_session: Session) -> int:
    return db_session.scalar(select(LedgerEntry.seq).order_by(LedgerEntry.seq.desc())) or 0


def test_an_entry_edited_in_the_database_is_detected(db_session: Session, ledger: Ledger) -> None:
    seq = _last_seq(db_session) - 2
    leaf = db_session.scalar(select(LedgerEntry.leaf).where(LedgerEntry.seq == seq)) or ""
    db_session.execute(update(LedgerEntry).where(LedgerEntry.seq == seq).values(leaf=leaf.replace("scopes", "scopez")))
    report = audit(db_session, ledger)
    assert not report.ok and report.first is not None and report.first.seq == seq
    # Named as an edit of that entry (its leaf hash), not only as a tree that no longer adds up.
    assert f"entry {seq} does not match its stored leaf hash" in report.first.message


def test_an_edited_checkpoint_is_detected(db_session: Session, ledger: Ledger) -> None:
    latest = db_session.scalars(select(LedgerCheckpoint).order_by(LedgerCheckpoint.tree_size.desc())).first()
    assert latest is not None
    db_session.execute(update(LedgerCheckpoint).where(LedgerCheckpoint.tree_size == latest.tree_size)
                       .values(note=latest.note.replace(f"\n{latest.tree_size}\n", f"\n{latest.tree_size + 1}\n")))
    assert not audit(db_session, ledger).ok

