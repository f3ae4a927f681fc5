"""Passkeys (WebAuthn credentials) registered to citizen accounts (sign-in.md "Passkeys")."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow


class Passkey(Base):
    __tablename__ = "passkeys"

    credential_id: Mapped[str] = mapped_column(String(1400), primary_key=True)  # base64url
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(default=0)
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(100))
    user_verified: Mapped[bool] = mapped_column(default=True)
    backed_up: Mapped[bool] = mapped_column(default=False)
    # WebAuthn L3 §6.1.3: BE never changes for a credential; checked at every assertion.
    backup_eligible: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None]
