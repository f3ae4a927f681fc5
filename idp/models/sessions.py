"""Server-side sign-in sessions: the single sign-on state (sign-in.md "Sessions")."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.models.accounts import Account
from store.db import Base, utcnow


class LoginSession(Base):
    """One signed-in browser. The cookie holds a random token; we store only its SHA-256."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sid: Mapped[str] = mapped_column(String(43), unique=True)  # the public `sid` claim
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[dt.datetime]
    acr: Mapped[str] = mapped_column(String(16))
    amr: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_active_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    user_agent: Mapped[str | None] = mapped_column(String(300))
    ip_prefix: Mapped[str | None] = mapped_column(String(50))

    account: Mapped[Account] = relationship(lazy="joined")
    participants: Mapped[list[SessionParticipant]] = relationship(cascade="all, delete-orphan")


class SessionParticipant(Base):
    """A client that received tokens in a session (the audience of back-channel logout)."""

    __tablename__ = "session_participants"

    session_id: Mapped[str] = mapped_column(ForeignKey("login_sessions.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True)
    first_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
