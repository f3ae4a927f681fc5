"""Authorization codes, token families, access and refresh tokens, client-assertion ids.

A *token family* is everything issued from one authorization code: revoking it (code
replay, refresh-token reuse, revocation of a refresh token) revokes every token in it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

import consent.delegation_models  # noqa: F401  (delegations, which token families refer to)
from idp.models.accounts import Account
from idp.models.clients import Client
from idp.models.sessions import LoginSession
from store.db import Base, utcnow


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"
    __table_args__ = (Index("ix_authorization_codes_client_id_nonce", "client_id", "nonce"),)

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("login_sessions.id", ondelete="SET NULL"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(2000))
    nonce: Mapped[str | None] = mapped_column(String(500))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    claims_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    auth_time: Mapped[dt.datetime]
    acr: Mapped[str] = mapped_column(String(16))
    amr: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    redeemed_at: Mapped[dt.datetime | None]
    # Redemptions tried, counted before the verifier is checked (idp.oauth.grants, RFC 7636 §4.6).
    redemption_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    family_id: Mapped[str | None] = mapped_column(ForeignKey("token_families.id", ondelete="SET NULL"))
    # delegation.md "Act": account_id is the principal served; the delegate acting is the actor.
    delegation_id: Mapped[str | None] = mapped_column(ForeignKey("delegations.id", ondelete="SET NULL"))
    actor_account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))

    account: Mapped[Account] = relationship(lazy="joined", foreign_keys=[account_id])
    # The ID token's ``sid`` (Back-Channel Logout 1.0 §2.4), read with the code rather than after it.
    session_sid: Mapped[str | None] = column_property(
        select(LoginSession.sid).where(LoginSession.id == session_id).scalar_subquery()
    )
    # When that session was signed out, read in the same statement (see ``session_signed_out``).
    session_ended_at: Mapped[dt.datetime | None] = column_property(
        select(LoginSession.ended_at).where(LoginSession.id == session_id).scalar_subquery()
    )

    @property
    def session_signed_out(self) -> bool:
        """The sign-in session the code was issued in has ended (signed out, everywhere too) or is gone."""
        return self.session_id is None or self.session_ended_at is not None

    # --- Authlib AuthorizationCodeMixin ----------------------------------------------------
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.acr

    def get_amr(self) -> list[str]:
        return self.amr


class TokenFamily(Base):
    __tablename__ = "token_families"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("login_sessions.id", ondelete="SET NULL"), index=True)
    scope: Mapped[str] = mapped_column(String(2000))
    claims_request: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    auth_time: Mapped[dt.datetime]
    acr: Mapped[str] = mapped_column(String(16))
    amr: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    absolute_expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    # delegation.md "Act": tokens for the principal (account_id) used by a delegate (the actor);
    # revoking the delegation revokes these families, and every issuance re-checks it.
    delegation_id: Mapped[str | None] = mapped_column(ForeignKey("delegations.id", ondelete="SET NULL"), index=True)
    actor_account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))

    client: Mapped[Client] = relationship(lazy="joined")
    account: Mapped[Account] = relationship(lazy="joined", foreign_keys=[account_id])


class AccessToken(Base):
    """The server-side record of a JWT access token (RFC 9068), so revocation is immediate."""

    __tablename__ = "access_tokens"

    jti: Mapped[str] = mapped_column(String(43), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("token_families.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(2000))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]

    family: Mapped[TokenFamily] = relationship(lazy="joined")

    # --- Authlib TokenMixin (revocation and introspection) ----------------------------------
    def check_client(self, client: Client) -> bool:
        return self.family.client_id == client.client_id

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.family.revoked_at is not None


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("token_families.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(2000))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    family: Mapped[TokenFamily] = relationship(lazy="joined")

    # --- Authlib TokenMixin (refresh side) -------------------------------------------------
    def check_client(self, client: Client) -> bool:
        return self.family.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow() or self.family.absolute_expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.used_at is not None or self.family.revoked_at is not None


class ClientAssertionJti(Base):
    """Seen ``jti`` values of client assertions, kept until the assertion expires (RFC 7523 §3)."""

    __tablename__ = "client_assertion_jtis"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
