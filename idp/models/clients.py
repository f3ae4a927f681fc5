"""Agencies (the pairwise sector) and their OAuth clients (protocol.md "Clients").

``Client`` implements Authlib's ``ClientMixin`` hooks; nothing else lives here.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, LargeBinary, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.redirect_uris import matches_loopback_any_port
from keys.digests import secret_digest
from store.db import Base, utcnow

hash_secret = secret_digest  # re-exported: how client secrets are stored

AUTH_METHODS = ("private_key_jwt", "client_secret_basic", "client_secret_post", "none")
ID_TOKEN_ALGS = ("ES256", "RS256", "PS256", "EdDSA")
AUDIT_SCOPE = "ledger:audit"  # consent-ledger.md "HTTP API": entries by range, for auditors
# Scopes that only an operator grants (``idp client grant-scope``): refused in client metadata
# (idp/registry.py), never allowed in an authorization request, so never on a consent page.
PRIVILEGED_SCOPES = frozenset({AUDIT_SCOPE})


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(200))
    sector_identifier: Mapped[str] = mapped_column(String(500))
    subject_salt: Mapped[bytes] = mapped_column(LargeBinary(32), default=lambda: secrets.token_bytes(32))
    initial_access_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    allow_public_subjects: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    clients: Mapped[list[Client]] = relationship(back_populates="agency")

    def pairwise_subject(self, account_id: str) -> str:
        """OIDC Core §8.1: one stable ``sub`` per (sector, account), unlinkable across sectors."""
        message = f"{self.sector_identifier}|{account_id}".encode()
        digest = hmac.new(self.subject_salt, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint(
            "token_endpoint_auth_method IN ('private_key_jwt', 'client_secret_basic', 'client_secret_post', 'none')",
            name="auth_method",
        ),
        CheckConstraint("subject_type IN ('pairwise', 'public')", name="subject_type"),
        CheckConstraint("id_token_signed_response_alg IN ('ES256', 'RS256', 'PS256', 'EdDSA')", name="id_token_alg"),
        CheckConstraint(
            "(token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post')) = (secret_hash IS NOT NULL)",
            name="secret_iff_secret_method",
        ),
        CheckConstraint("consent_days > 0", name="consent_days_positive"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    scope: Mapped[str] = mapped_column(String(2000))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(8), default="ES256")
    subject_type: Mapped[str] = mapped_column(String(8), default="pairwise")
    default_acr_values: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # consent-ledger.md "Consents": shown on the consent page, and how long a consent lasts.
    purpose: Mapped[str | None] = mapped_column(String(500))
    consent_days: Mapped[int] = mapped_column(default=365, server_default="365")
    # The legal basis under which the agency holds the claims: set by the operator only; no
    # consent page is shown, and the ledger still records every disclosure.
    statutory_basis: Mapped[str | None] = mapped_column(String(500))
    # idp/registry.py PRIVILEGED_SCOPES granted by an operator (``idp client grant-scope``): never
    # client metadata, so no registration sets them and no authorization request can ask for them.
    privileged_scopes: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # delegation.md "What agencies receive": False means never send this client acting-for tokens.
    delegation_supported: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    agency: Mapped[Agency] = relationship(back_populates="clients", lazy="joined")

    # --- Authlib ClientMixin -------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC Core §3.1.2.1: redirect_uri is REQUIRED, so there is no default.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split()) - PRIVILEGED_SCOPES  # operator grants are not OAuth scopes to ask for
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if redirect_uri in self.redirect_uris:  # exact match, RFC 9700 §4.1.3
            return True
        # RFC 8252 §7.3: any port for a native (public) client's loopback IP redirect URI.
        return self.is_public and any(matches_loopback_any_port(uri, redirect_uri) for uri in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(self.secret_hash, hash_secret(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    # --- our own -------------------------------------------------------------------------
    def holds_privilege(self, scope: str) -> bool:
        """An operator granted ``scope`` (one of PRIVILEGED_SCOPES) to this client."""
        return scope in PRIVILEGED_SCOPES and scope in self.privileged_scopes.split()

    def subject_for(self, account_id: str) -> str:
        if self.subject_type == "public":
            return account_id
        return self.agency.pairwise_subject(account_id)

    @property
    def client_metadata(self) -> dict[str, Any]:
        """What Authlib's RP-initiated logout endpoint reads."""
        return {"post_logout_redirect_uris": self.post_logout_redirect_uris}

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"
