"""``idp ledger verify`` catches rows edited directly in the database: modified, deleted, inserted
and reordered entries, edited subtree hashes, and forged checkpoints — naming the first bad entry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from consent import merkle, notes
from consent.audit import AuditReport, audit
from consent.consents import record_decision
from consent.events import EventType
from consent.ledger import CheckpointPolicy, Ledger
from consent.models import LedgerCheckpoint, LedgerEntry, LedgerHead, LedgerNode, LedgerReceipt, LedgerSubject
from consent.verify import leaf_hash
from idp.accounts import create_account
from idp.cli import main
from idp.config import Settings
from idp.consent_ledger import ledger_for
from idp.registry import create_agency
from tests.consent.conftest import MemoryKeys

N = 12


@pytest.fixture
def base(db_session: Session, ledger: Ledger) -> int:
    """N events about citizens after the ledger's current end, with a checkpoint every 4."""
    small = Ledger(ledger.keys, ledger.origin, CheckpointPolicy(entries=4, seconds=3600))
    start = small.size(db_session)
    for i in range(N):
        small.append(db_session, EventType.CONSENT_EXPIRED, {"subject": f"p{i}", "agency": f"a{i}", "scopes": []})
    small.checkpoint(db_session)
    assert audit(db_session, ledger).ok
    return start


def _first(db_session: Session, ledger: Ledger) -> tuple[int, str]:
    report: AuditReport = audit(db_session, ledger)
    assert not report.ok and report.first is not None
    return report.first.seq, report.first.message


def _leaf(db_session: Session, seq: int) -> str:
    return db_session.scalar(select(LedgerEntry.leaf).where(LedgerEntry.seq == seq)) or ""


def _rebuild_hashes(db_session: Session) -> None:
    """What a thorough attacker does after editing entries: recompute every stored hash and the head."""
    rows = db_session.execute(select(LedgerEntry.seq, LedgerEntry.leaf).order_by(LedgerEntry.seq)).all()
    db_session.execute(delete(LedgerNode))
    frontier: list[bytes] = []
    for seq, leaf in rows:
        hashed = leaf_hash(leaf.encode())
        db_session.execute(update(LedgerEntry).where(LedgerEntry.seq == seq).values(leaf_hash=hashed))
        frontier, completed = merkle.append_leaf(seq, frontier, hashed)
        for (level, idx), node in completed:
            db_session.execute(insert(LedgerNode).values(level=level, idx=idx, hash=node))
    db_session.execute(update(LedgerHead).values(size=len(rows), frontier=merkle.pack(frontier), checkpoint_size=0))


def test_an_untampered_ledger_verifies(db_session: Session, ledger: Ledger, base: int) -> None:
    report = audit(db_session, ledger)
    assert report.ok and report.size == base + N and report.checkpoints >= 3


def test_an_entry_edited_in_place_is_named(db_session: Session, ledger: Ledger, base: int) -> None:
    edited = _leaf(db_session, base + 5).replace('"a5"', '"a6"')
    db_session.execute(update(LedgerEntry).where(LedgerEntry.seq == base + 5).values(leaf=edited))
    assert _first(db_session, ledger) == (base + 5, f"entry {base + 5} does not match its stored leaf hash "
                                                    "(the entry was modified)")


def test_an_entry_edited_with_all_its_hashes_recomputed_is_named_by_its_receipt(db_session: Session, ledger: Ledger,
                                                                                base: int) -> None:
    edited = _leaf(db_session, base + 6).replace('"a6"', '"a7"')
    db_session.execute(update(LedgerEntry).where(LedgerEntry.seq == base + 6).values(leaf=edited))
    _rebuild_hashes(db_session)
    seq, message = _first(db_session, ledger)
    assert seq == base + 6 and "signed receipt" in message


def test_a_deleted_entry_is_named(db_session: Session, ledger: Ledger, base: int) -> None:
    for table in (LedgerSubject, LedgerReceipt, LedgerEntry):
        db_session.execute(delete(table).where(table.seq == base + 3))
    seq, message = _first(db_session, ledger)
    assert seq == base + 3 and "missing" in message


def test_the_last_entries_deleted_with_the_head_rolled_back_are_caught_by_the_checkpoint(
        db_session: Session, ledger: Ledger, base: int) -> None:
    for table in (LedgerSubject, LedgerReceipt, LedgerEntry):
        db_session.execute(delete(table).where(table.seq >= base + N - 2))
    _rebuild_hashes(db_session)
    seq, message = _first(db_session, ledger)
    assert seq == base + N - 2 and "not stored" in message


def test_an_entry_inserted_at_the_end_is_named(db_session: Session, ledger: Ledger, base: int) -> None:
    forged = {"v": 1, "seq": base + N, "time": "2026-01-01T00:00:00.000Z", "type": "account.erased", "subject": "x"}
    leaf = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    db_session.execute(insert(LedgerEntry).values(seq=base + N, leaf=leaf, leaf_hash=leaf_hash(leaf.encode()),
                                                  type="account.erased", created_at=forged_time()))
    seq, message = _first(db_session, ledger)
    assert seq == base + N and "head" in message


def test_an_entry_inserted_in_the_middle_is_caught(db_session: Session, ledger: Ledger, base: int) -> None:
    k = base + 7
    for table in (LedgerSubject, LedgerReceipt):
        db_session.execute(delete(table).where(table.seq >= k))
    db_session.execute(update(LedgerEntry).where(LedgerEntry.seq >= k).values(seq=LedgerEntry.seq + 1_000_000))
    db_session.execute(update(LedgerEntry).where(LedgerEntry.seq >= k).values(seq=LedgerEntry.seq - 999_999))
    forged = {"v": 1, "seq": k, "time": "2026-01-01T00:00:00.000Z", "type": "account.erased", "subject": "x"}
    leaf = json.dumps(forged, sort_keys=True, separators=(",", ":"))
    db_session.execute(insert(LedgerEntry).values(seq=k, leaf=leaf, leaf_hash=leaf_hash(leaf.encode()),
                                                  type="account.erased", created_at=forged_time()))
    _rebuild_hashes(db_session)
    seq, _message = _first(db_session, ledger)
    assert base + 4 <= seq <= k + 1  # after the last checkpoint that still matches, at the latest the shifted one


def test_reordered_entries_are_named(db_session: Session, ledger: Ledger, base: int) -> None:
    first, second = base + 2, base + 9
    hashes = select(LedgerEntry.seq, LedgerEntry.leaf_hash).where(LedgerEntry.seq.in_([first, second]))
    rows = {seq: (_leaf(db_session, seq), hashed) for seq, hashed in db_session.execute(hashes)}
    for seq, other in ((first, second), (second, first)):
        db_session.execute(update(LedgerEntry).where(LedgerEntry.seq == seq)
                           .values(leaf=rows[other][0], leaf_hash=rows[other][1]))
    seq, message = _first(db_session, ledger)
    assert seq == first and "reordered" in message


def test_an_edited_subtree_hash_is_caught(db_session: Session, ledger: Ledger, base: int) -> None:
    level, idx = 1, (base + 4) // 2
    db_session.execute(update(LedgerNode).where(LedgerNode.level == level, LedgerNode.idx == idx)
                       .values(hash=b"\x00" * 32))
    seq, message = _first(db_session, ledger)
    assert seq == idx * 2 and "subtree" in message


def test_a_checkpoint_with_an_edited_root_is_forged(db_session: Session, ledger: Ledger, base: int) -> None:
    size = db_session.scalar(select(LedgerCheckpoint.tree_size).where(LedgerCheckpoint.tree_size < base + N)
                             .order_by(LedgerCheckpoint.tree_size.desc()).limit(1)) or 0
    note = db_session.scalar(select(LedgerCheckpoint.note).where(LedgerCheckpoint.tree_size == size)) or ""
    lines = note.split("\n")
    lines[2] = "A" * 43 + "="
    db_session.execute(update(LedgerCheckpoint).where(LedgerCheckpoint.tree_size == size).values(note="\n".join(lines)))
    seq, message = _first(db_session, ledger)
    assert seq == size and "forged" in message


def test_a_checkpoint_signed_by_another_key_is_forged(db_session: Session, ledger: Ledger, base: int) -> None:
    impostor = MemoryKeys().private_key
    size = base + 12
    text = notes.checkpoint_text(ledger.origin, size, b"\x01" * 32)
    db_session.execute(update(LedgerCheckpoint).where(LedgerCheckpoint.tree_size == size)
                       .values(note=notes.sign_note(text, ledger.origin, impostor)))
    seq, message = _first(db_session, ledger)
    assert seq == size and "no signature on the note verifies" in message


def forged_time():  # type: ignore[no-untyped-def]
    from store.db import utcnow

    return utcnow()


def test_idp_ledger_verify_exits_non_zero_naming_the_first_bad_entry(tmp_path: Path) -> None:
    database = tmp_path / "cli.sqlite"
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{database}",
           "IDP_ISSUER": "http://127.0.0.1:5000"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    _three_consents(Settings.from_env(environ=env))
    checkpoint = runner.invoke(main, ["ledger", "checkpoint"], env=env)
    assert checkpoint.exit_code == 0 and json.loads(checkpoint.stdout)["tree_size"] == 3
    verified = runner.invoke(main, ["ledger", "verify"], env=env)
    assert verified.exit_code == 0 and json.loads(verified.stdout)["verified"] is True
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE ledger_entries SET leaf = replace(leaf, 'email', 'phone') WHERE seq = 1")
    failed = runner.invoke(main, ["ledger", "verify"], env=env)
    assert failed.exit_code == 1
    assert "first bad entry 1: entry 1 does not match its stored leaf hash" in failed.output


def _three_consents(settings: Settings) -> None:
    from idp.app import build_services

    services = build_services(settings)
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        agency, _token = create_agency(session, "Dept")
        for n in range(3):
            account = create_account(session, email=f"c{n}@example.com", given_name="C", family_name="D",
                                     password="a long enough password")
            record_decision(session, account.id, agency.id, granted={"email"}, denied=set(),
                            ledger=ledger_for(settings, services.keyring), client_id="c")
    services.engine.dispose()
