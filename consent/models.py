"""What each citizen agreed to share with each agency (consent-ledger.md "Consents")."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import Base, utcnow


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

    @property
    def granted(self) -> frozenset[str]:
        return frozenset(self.granted_scopes.split())

    @property
    def denied(self) -> frozenset[str]:
        return frozenset(self.denied_scopes.split())

    def is_active(self, now: dt.datetime) -> bool:
        return self.withdrawn_at is None and (self.expires_at is None or self.expires_at > now)
