"""The ledger appends events in the caller's transaction, names people only by pseudonym, signs a
receipt per event about a citizen and a checkpoint every N entries (consent-ledger.md)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent import tree
from consent.audit import audit
from consent.consents import expire_consents, find_consent, record_decision, undecided_scopes, withdraw_consent
from consent.erasure import erase_from_ledger
from consent.errors import ConsentNotActive, InvalidEvent
from consent.events import EventType
from consent.ledger import CheckpointPolicy, Ledger
from consent.models import LedgerCheckpoint, LedgerEntry
from consent.pseudonyms import pseudonym_for, record_pseudonyms
from consent.verify import canonical_json, leaf_hash, verify_checkpoint, verify_inclusion, verify_receipt
from idp.models import Account, Agency
from store.db import utcnow


def _grant(session: Session, ledger: Ledger, citizen: Account, agency: Agency, **extra: object) -> None:
    record_decision(session, citizen.id, agency.id, granted={"email"}, denied={"phone"}, ledger=ledger,
                    client_id="client-1", purpose="To send you letters", **extra)  # type: ignore[arg-type]


def _entries(session: Session, ledger: Ledger, citizen: Account) -> list[dict]:
    return [item.entry for item in ledger.record_of(session, citizen.id)]


def test_a_consent_decision_is_logged_with_the_standing_consent(db_session: Session, ledger: Ledger,
                                                                citizen: Account, agency: Agency) -> None:
    _grant(db_session, ledger, citizen, agency, days=30)
    [entry] = _entries(db_session, ledger, citizen)
    assert entry["type"] == "consent.granted" and entry["v"] == 2
    assert entry["scopes"] == ["email"] and entry["denied"] == ["phone"]
    assert entry["agency"] == agency.id and entry["client"] == "client-1" and entry["purpose"] == "To send you letters"
    consent = find_consent(db_session, citizen.id, agency.id)
    assert consent is not None and consent.expires_at is not None
    assert dt.timedelta(days=29) < consent.expires_at - utcnow() <= dt.timedelta(days=30)


def test_entries_name_people_only_by_pseudonym(db_session: Session, ledger: Ledger, citizen: Account,
                                               agency: Agency) -> None:
    _grant(db_session, ledger, citizen, agency)
    leaf = db_session.scalar(select(LedgerEntry.leaf).order_by(LedgerEntry.seq.desc()).limit(1))
    assert leaf is not None
    for personal in (citizen.id, citizen.email, citizen.given_name, citizen.family_name):
        assert personal not in leaf
    assert json.loads(leaf)["subject"] == pseudonym_for(db_session, citizen.id, agency.id)


def test_the_leaf_is_the_rfc8785_canonical_entry(db_session: Session, ledger: Ledger, citizen: Account,
                                                 agency: Agency) -> None:
    _grant(db_session, ledger, citizen, agency)
    row = db_session.execute(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1)).scalar_one()
    assert canonical_json(json.loads(row.leaf)) == row.leaf.encode()
    assert leaf_hash(row.leaf.encode()) == row.leaf_hash


def test_the_receipt_is_signed_and_proves_inclusion(db_session: Session, ledger: Ledger, citizen: Account,
                                                    agency: Agency) -> None:
    _grant(db_session, ledger, citizen, agency)
    stored = ledger.record_of(db_session, citizen.id)[-1]
    assert stored.receipt is not None
    keys = ledger.verifier_keys(db_session)
    receipt = verify_receipt(stored.receipt, keys)
    assert receipt.leaf_index == stored.seq and receipt.entry == stored.entry
    made = ledger.checkpoint(db_session)
    assert made is not None
    checkpoint = verify_checkpoint(made.note, keys)
    path = ledger.inclusion_proof(db_session, receipt.leaf_index, checkpoint.size)
    verify_inclusion(receipt.leaf_hash, receipt.leaf_index, checkpoint.size, path, checkpoint.root_hash)


def test_a_checkpoint_is_made_every_n_entries(db_session: Session, ledger: Ledger, citizen: Account,
                                              agency: Agency) -> None:
    every_three = Ledger(ledger.keys, ledger.origin, CheckpointPolicy(entries=3, seconds=3600))
    every_three.append(db_session, EventType.ACCOUNT_ERASED, {"subject": "someone"})
    every_three.checkpoint(db_session)
    start = every_three.size(db_session)
    for _ in range(7):
        every_three.append(db_session, EventType.ACCOUNT_ERASED, {"subject": "someone"})
    sizes = db_session.scalars(select(LedgerCheckpoint.tree_size).where(LedgerCheckpoint.tree_size > start)).all()
    assert sorted(sizes) == [start + 3, start + 6]


def test_a_checkpoint_is_made_when_t_seconds_have_passed(db_session: Session, ledger: Ledger) -> None:
    clock = [utcnow()]
    timed = Ledger(ledger.keys, ledger.origin, CheckpointPolicy(entries=1000, seconds=60), clock=lambda: clock[0])
    timed.append(db_session, EventType.ACCOUNT_ERASED, {"subject": "someone"})
    timed.checkpoint(db_session)
    timed.append(db_session, EventType.ACCOUNT_ERASED, {"subject": "someone"})
    assert timed.latest_checkpoint(db_session).tree_size == timed.size(db_session) - 1  # type: ignore[union-attr]
    clock[0] += dt.timedelta(seconds=61)
    timed.append(db_session, EventType.ACCOUNT_ERASED, {"subject": "someone"})
    assert timed.latest_checkpoint(db_session).tree_size == timed.size(db_session)  # type: ignore[union-attr]


def test_events_must_carry_exactly_their_fields(db_session: Session, ledger: Ledger) -> None:
    with pytest.raises(InvalidEvent, match="missing"):
        ledger.append(db_session, EventType.DISCLOSURE, {"subject": "p"})
    with pytest.raises(InvalidEvent, match="unexpected"):
        ledger.append(db_session, EventType.ACCOUNT_ERASED, {"subject": "p", "email": "a@b.c"})
    with pytest.raises(InvalidEvent, match="float"):
        ledger.append(db_session, EventType.CONSENT_EXPIRED, {"subject": "p", "agency": "a", "scopes": [1.5]})


class RecordingRevoker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def lock(self, _session: Session, account_id: str, agency_id: str) -> None:
        self.calls.append(("lock", account_id, agency_id))

    def revoke(self, _session: Session, account_id: str, agency_id: str) -> None:
        self.calls.append(("revoke", account_id, agency_id))


def test_withdrawal_revokes_and_is_logged_and_cannot_happen_twice(db_session: Session, ledger: Ledger,
                                                                  citizen: Account, agency: Agency) -> None:
    _grant(db_session, ledger, citizen, agency)
    revoker = RecordingRevoker()
    withdraw_consent(db_session, citizen.id, agency.id, ledger=ledger, revoke_tokens=revoker)
    assert revoker.calls == [("lock", citizen.id, agency.id), ("revoke", citizen.id, agency.id)]
    assert [e["type"] for e in _entries(db_session, ledger, citizen)] == ["consent.granted", "consent.withdrawn"]
    assert undecided_scopes(find_consent(db_session, citizen.id, agency.id), ["email"]) == {"email"}
    with pytest.raises(ConsentNotActive):
        withdraw_consent(db_session, citizen.id, agency.id, ledger=ledger, revoke_tokens=RecordingRevoker())


def test_expiry_is_logged_once_by_the_tick(db_session: Session, ledger: Ledger, citizen: Account,
                                           agency: Agency) -> None:
    _grant(db_session, ledger, citizen, agency, days=1)
    later = utcnow() + dt.timedelta(days=2)
    assert expire_consents(db_session, ledger=ledger, now=later) >= 1
    assert expire_consents(db_session, ledger=ledger, now=later) == 0
    assert [e["type"] for e in _entries(db_session, ledger, citizen)] == ["consent.granted", "consent.expired"]
    _grant(db_session, ledger, citizen, agency)  # expired → active again
    consent = find_consent(db_session, citizen.id, agency.id)
    assert consent is not None and consent.expired_at is None and consent.is_active(utcnow())


def test_erasure_unlinks_the_pseudonym_and_the_ledger_still_verifies(db_session: Session, ledger: Ledger,
                                                                     citizen: Account, agency: Agency) -> None:
    _grant(db_session, ledger, citizen, agency)
    at_agency, own = pseudonym_for(db_session, citizen.id, agency.id), pseudonym_for(db_session, citizen.id, None)
    appended = erase_from_ledger(db_session, citizen.id, ledger=ledger)
    assert appended is not None and appended.entry == {**appended.entry, "type": "account.erased", "subject": own}
    assert record_pseudonyms(db_session, citizen.id) == [] and ledger.record_of(db_session, citizen.id) == []
    db_session.delete(db_session.get(Account, citizen.id))
    db_session.flush()
    assert len(ledger.entries_of(db_session, at_agency, own)) == 2  # still there, tied to no one
    ledger.checkpoint(db_session)
    assert audit(db_session, ledger).ok


def test_erasing_an_account_never_logged_records_nothing(db_session: Session, ledger: Ledger,
                                                         citizen: Account) -> None:
    before = ledger.size(db_session)
    assert erase_from_ledger(db_session, citizen.id, ledger=ledger) is None
    assert ledger.size(db_session) == before


def test_a_consent_change_whose_append_fails_is_rolled_back_whole(db_session: Session, ledger: Ledger,
                                                                   citizen: Account, agency: Agency,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    size = ledger.size(db_session)
    db_session.commit()

    write = tree.write_leaf

    def write_then_fail(*args: object) -> None:
        write(*args)  # type: ignore[arg-type]
        raise RuntimeError("disk full")

    monkeypatch.setattr(tree, "write_leaf", write_then_fail)  # fails after the entry, nodes and receipt were written
    with pytest.raises(RuntimeError):
        _grant(db_session, ledger, citizen, agency)
    db_session.rollback()
    assert find_consent(db_session, citizen.id, agency.id) is None
    assert db_session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.seq >= size)) == 0
    assert ledger.size(db_session) == size
