"""One-time email codes (sign-up, recovery) and WebAuthn ceremony challenges: single use, expiring."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow


class EmailChallenge(Base):
    """A 6-digit code sent to an email address, or (``handover``) the single-use link that gives a
    young person their own account; stored only as a hash (sign-in.md "Accounts")."""

    __tablename__ = "email_challenges"
    __table_args__ = (CheckConstraint("purpose IN ('signup', 'recovery', 'handover')", name="purpose"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    purpose: Mapped[str] = mapped_column(String(10))
    email: Mapped[str] = mapped_column(String(320), index=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    verified_at: Mapped[dt.datetime | None]
    consumed_at: Mapped[dt.datetime | None]


class WebAuthnChallenge(Base):
    """A registration or authentication challenge, consumed on first use."""

    __tablename__ = "webauthn_challenges"
    __table_args__ = (CheckConstraint("purpose IN ('register', 'authenticate')", name="purpose"),)

    id: Mapped[str] = mapped_column(String(43), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(12))
    challenge: Mapped[bytes] = mapped_column(LargeBinary(64))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
