"""What each citizen agreed to share with each agency, and the consent ledger's tables (consent-ledger.md)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow


class Consent(Base):
    """The standing decision of one citizen about one agency: granted **and** denied scopes.

    Denied scopes are remembered so the citizen is not asked again for what they refused;
    the decision is re-checked at every token issuance and refresh.
    """

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("account_id", "agency_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    granted_scopes: Mapped[str] = mapped_column(String(2000), default="")
    denied_scopes: Mapped[str] = mapped_column(String(2000), default="")
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[dt.datetime | None]
    withdrawn_at: Mapped[dt.datetime | None]
    # When consent.expired was recorded; cleared, like withdrawn_at, by a new decision.
    expired_at: Mapped[dt.datetime | None]
    purpose: Mapped[str | None] = mapped_column(String(500))
    last_used_at: Mapped[dt.datetime | None]

    @property
    def granted(self) -> frozenset[str]:
        return frozenset(self.granted_scopes.split())

    @property
    def denied(self) -> frozenset[str]:
        return frozenset(self.denied_scopes.split())

    def is_active(self, now: dt.datetime) -> bool:
        ended = self.withdrawn_at is not None or self.expired_at is not None
        return not ended and (self.expires_at is None or self.expires_at > now)


# -- the consent ledger (consent-ledger.md "The ledger") -------------------------------------------
#
# Append-only: rows are inserted, never updated (except the single head row) or deleted.


class LedgerHead(Base):
    """The one row every append locks first (gap-free sequence numbers, consent-ledger.md).

    ``frontier`` holds the hashes of the perfect subtrees of the whole tree, largest first
    (one per set bit of ``size``), so an append and the current root are O(log n).
    """

    __tablename__ = "ledger_head"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("size >= 0 AND checkpoint_size >= 0 AND checkpoint_size <= size", name="sizes"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    checkpoint_size: Mapped[int] = mapped_column(BigInteger)
    checkpoint_at: Mapped[dt.datetime | None]


class LedgerEntry(Base):
    """One leaf: the RFC 8785 canonical JSON of the entry and its RFC 9162 §2.1.1 leaf hash."""

    __tablename__ = "ledger_entries"
    __table_args__ = (CheckConstraint("seq >= 0", name="seq_not_negative"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    leaf: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    type: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime]


class LedgerNode(Base):
    """The hash of a complete subtree (level ≥ 1) covering leaves [idx·2^level, (idx+1)·2^level)."""

    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerSubject(Base):
    """Which entries name which ledger pseudonym: a citizen's own record, without parsing JSON."""

    __tablename__ = "ledger_subjects"

    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True)


class LedgerReceipt(Base):
    """The signed receipt (compact JWS) issued for an entry when it was appended."""

    __tablename__ = "ledger_receipts"

    seq: Mapped[int] = mapped_column(ForeignKey("ledger_entries.seq"), primary_key=True, autoincrement=False)
    token: Mapped[str] = mapped_column(Text)


class LedgerCheckpoint(Base):
    """A signed checkpoint: C2SP tlog-checkpoint text on a C2SP signed-note."""

    __tablename__ = "ledger_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
