"""Citizen accounts (sign-in.md "Accounts")."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, CheckConstraint, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow

ACCOUNT_STATUSES = ("active", "locked", "deleted")


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'locked', 'deleted')", name="status"),
        CheckConstraint("locale IN ('en', 'cy')", name="locale"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    given_name: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    birthdate: Mapped[dt.date | None]
    phone_number: Mapped[str | None] = mapped_column(String(40))
    phone_number_verified: Mapped[bool] = mapped_column(default=False)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    locale: Mapped[str] = mapped_column(String(2), default="en")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="active")
    # consent/pseudonyms.py: the secret the citizen's pairwise ledger pseudonyms are derived from;
    # NULL once erased. ``ledger_pseudonym`` is the one pseudonym of entries made before 0010.
    ledger_secret: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    ledger_pseudonym: Mapped[str | None] = mapped_column(String(32), unique=True)
    # idp/passkey_reset.py: when every passkey is removed, having been reported lost (NULL: not asked).
    passkeys_reset_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"
