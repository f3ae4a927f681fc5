"""Issuing, recording, checking and revoking tokens.

Access tokens are JWTs (RFC 9068) *and* rows in ``access_tokens``, so a revocation, a
withdrawn consent or a replayed code takes effect at once at userinfo and introspection.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session, object_session

from consent.acting import still_in_force
from idp.config import Settings
from idp.models import AccessToken, Account, Agency, AuthorizationCode, Client, RefreshToken, TokenFamily
from keys.digests import secret_digest
from keys.errors import TokenVerificationError
from keys.keyring import Keyring
from store.db import run, utcnow

token_hash = secret_digest  # re-exported: how tokens are looked up
ACCESS_TOKEN_TYP = "at+jwt"  # RFC 9068 §2.1


def encode_access_token(keyring: Keyring, session: Session, settings: Settings,
                        client: Client, account: Account, scope: str, extra: dict[str, Any] | None = None) -> str:
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti, scope (+ ``act``, ``delegation``)."""
    now = int(utcnow().timestamp())
    claims = {
        "iss": settings.issuer,
        "sub": client.subject_for(account.id),
        "aud": settings.endpoint("/userinfo"),
        "client_id": client.client_id,
        "scope": scope,
        "jti": secrets.token_urlsafe(32),
        "iat": now,
        "exp": now + settings.access_token_ttl,
    } | (extra or {})
    return keyring.sign_jwt(session, claims, alg="ES256", typ=ACCESS_TOKEN_TYP)


def decode_own_access_token(keyring: Keyring, session: Session, settings: Settings,
                            token: str) -> dict[str, Any] | None:
    try:
        return keyring.verify_jwt(
            session, token, audience=settings.endpoint("/userinfo"), issuer=settings.issuer, typ=ACCESS_TOKEN_TYP
        )
    except TokenVerificationError:
        return None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def start_family(session: Session, settings: Settings, *, client_id: str, account_id: str,
                 session_id: str | None, scope: str, claims_request: dict[str, Any] | None,
                 auth_time: dt.datetime, acr: str, amr: list[str], delegation_id: str | None = None,
                 actor_account_id: str | None = None) -> TokenFamily:
    """Insert a new family (one INSERT, no ORM flush); the returned object is not in the session."""
    now = utcnow()
    values = dict(
        id=str(uuid.uuid4()), client_id=client_id, account_id=account_id, session_id=session_id, scope=scope,
        claims_request=claims_request, auth_time=auth_time, acr=acr, amr=amr, created_at=now,
        delegation_id=delegation_id, actor_account_id=actor_account_id,
        absolute_expires_at=now + dt.timedelta(seconds=settings.refresh_absolute_ttl),
    )
    run(session, _INSERT_FAMILY, values)
    return TokenFamily(**values)


def record_tokens(session: Session, settings: Settings, family: TokenFamily, access_claims: dict[str, Any],
                  refresh_token: str | None, refresh_scope: str) -> None:
    """The server-side records of a new access token and (if any) refresh token: plain INSERTs."""
    run(session, _INSERT_ACCESS, {
        "jti": access_claims["jti"], "family_id": family.id, "scope": access_claims["scope"],
        "issued_at": dt.datetime.fromtimestamp(access_claims["iat"], dt.UTC),
        "expires_at": dt.datetime.fromtimestamp(access_claims["exp"], dt.UTC),
    })
    if refresh_token:
        now, idle = utcnow(), dt.timedelta(seconds=settings.refresh_idle_ttl)
        run(session, _INSERT_REFRESH, {
            "token_hash": token_hash(refresh_token), "family_id": family.id, "scope": refresh_scope,
            "issued_at": now, "expires_at": min(now + idle, family.absolute_expires_at),
        })


def link_code(session: Session, code_hash: str, family_id: str) -> None:
    """Remember which family a code started, so a replay of the code can revoke it (RFC 6749 §4.1.2)."""
    run(session, _LINK_CODE, {"hash": code_hash, "family": family_id})


_INSERT_FAMILY = insert(TokenFamily)
_INSERT_ACCESS = insert(AccessToken)
_INSERT_REFRESH = insert(RefreshToken)
_LINK_CODE = (update(AuthorizationCode).where(AuthorizationCode.code_hash == bindparam("hash"))
              .values(family_id=bindparam("family")))


def lock_family(session: Session, family_id: str) -> None:
    """Take the family's row lock (PostgreSQL; SQLite already serialises writers)."""
    session.execute(select(TokenFamily.id).where(TokenFamily.id == family_id).with_for_update())


def revoke_family(session: Session, family_id: str, reason: str) -> None:
    """Revoke the family and every token in it; the family row is locked first (see lock_family)."""
    lock_family(session, family_id)
    now = utcnow()
    session.execute(
        update(TokenFamily).where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    session.execute(
        update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(AccessToken).where(AccessToken.family_id == family_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_families_of(session: Session, *, account_id: str, client_ids: list[str] | None, reason: str) -> None:
    """Revoke a citizen's families one by one, in id order: whoever locks several families locks
    them in that order (see also ``AgencyTokens.lock``, ``families_under``), so two such revocations
    wait for each other rather than deadlock."""
    query = select(TokenFamily.id).where(TokenFamily.account_id == account_id, TokenFamily.revoked_at.is_(None))
    if client_ids is not None:
        query = query.where(TokenFamily.client_id.in_(client_ids))
    for family_id in session.scalars(query.order_by(TokenFamily.id)).all():
        revoke_family(session, family_id, reason)


def revoke_families_held_by(session: Session, account_id: str, reason: str) -> None:
    """Revoke every live family the account holds, as the citizen or as the helper acting for one
    (``actor_account_id``), in id order like ``revoke_families_of``: what a recovered account does,
    since whoever had the old password may hold its refresh tokens (security.md "Secrets and data")."""
    query = (select(TokenFamily.id).where(TokenFamily.revoked_at.is_(None))
             .where(or_(TokenFamily.account_id == account_id, TokenFamily.actor_account_id == account_id)))
    for family_id in session.scalars(query.order_by(TokenFamily.id)).all():
        revoke_family(session, family_id, reason)


def active_access_token(keyring: Keyring, session: Session, settings: Settings, token: str) -> AccessToken | None:
    """The record of a valid, unexpired, unrevoked access token of ours, or None."""
    claims = decode_own_access_token(keyring, session, settings, token)
    if claims is None:
        return None
    record = session.get(AccessToken, claims["jti"])
    if record is None or not is_live(record):
        return None
    return record


@dataclasses.dataclass(frozen=True)
class LiveAccessToken:
    """A live access token and what userinfo (OIDC Core §5.3) and introspection (RFC 7662) read
    about it, from one statement of plain columns.

    ``client`` and ``account`` are unsaved copies holding only what ``subject_for`` and the
    claims need; they are never added to a session.
    """

    jti: str
    scope: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    account_id: str
    auth_time: dt.datetime
    acr: str
    claims_request: dict[str, Any] | None
    delegation_id: str | None
    client: Client
    account: Account

    # Authlib's TokenMixin, as introspection asks: liveness was checked when it was read.
    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


def live_access_token(keyring: Keyring, session: Session, settings: Settings, token: str) -> LiveAccessToken | None:
    """As ``active_access_token`` (same liveness rules), as plain columns rather than five ORM
    objects: measured, ~220 µs of CPU against ~460 µs for ``session.get`` and its joined loads."""
    claims = decode_own_access_token(keyring, session, settings, token)
    if claims is None:
        return None
    row = run(session, _LIVE_ACCESS, {"jti": claims["jti"]}).first()
    if row is None or row.revoked_at is not None or row.family_revoked_at is not None:
        return None
    if row.expires_at <= utcnow() or row.status != "active":
        return None
    if row.delegation_id is not None and not still_in_force(session, row.delegation_id):
        return None
    agency = Agency(id=row.agency_id, sector_identifier=row.sector_identifier, subject_salt=row.subject_salt)
    client = Client(client_id=row.client_id, agency_id=row.agency_id, subject_type=row.subject_type, agency=agency)
    account = Account(id=row.account_id, **{name: getattr(row, name) for name in _ACCOUNT_CLAIM_COLUMNS})
    return LiveAccessToken(jti=claims["jti"], scope=row.scope, issued_at=row.issued_at, expires_at=row.expires_at,
                           account_id=row.account_id, auth_time=row.auth_time, acr=row.acr,
                           claims_request=row.claims_request, delegation_id=row.delegation_id, client=client,
                           account=account)


_ACCOUNT_CLAIM_COLUMNS = ("given_name", "family_name", "birthdate", "locale", "email", "email_verified",
                          "phone_number", "phone_number_verified", "address")
_LIVE_ACCESS = (
    select(AccessToken.scope, AccessToken.issued_at, AccessToken.expires_at, AccessToken.revoked_at,
           TokenFamily.revoked_at.label("family_revoked_at"), TokenFamily.account_id, TokenFamily.auth_time,
           TokenFamily.acr, TokenFamily.claims_request, TokenFamily.delegation_id, TokenFamily.client_id,
           Client.subject_type, Client.agency_id, Agency.sector_identifier, Agency.subject_salt, Account.status,
           *(getattr(Account, name) for name in _ACCOUNT_CLAIM_COLUMNS))
    .join(TokenFamily, TokenFamily.id == AccessToken.family_id)
    .join(Client, Client.client_id == TokenFamily.client_id)
    .join(Agency, Agency.id == Client.agency_id)
    .join(Account, Account.id == TokenFamily.account_id)
    .where(AccessToken.jti == bindparam("jti"))
)


def is_live(record: AccessToken) -> bool:
    family = record.family
    return (
        record.revoked_at is None
        and family.revoked_at is None
        and record.expires_at > utcnow()
        and family.account.status == "active"
        and delegation_holds(family)
    )


def delegation_holds(family: TokenFamily) -> bool:
    """delegation.md: tokens issued under a delegation die with it, even before the tick runs."""
    if family.delegation_id is None:
        return True
    session = object_session(family)
    return session is not None and still_in_force(session, family.delegation_id)


def claim_refresh_token(session: Session, record: RefreshToken) -> bool:
    """Atomically mark a refresh token used; False if someone else used it first (reuse)."""
    return run(session, _CLAIM_REFRESH, {"hash": record.token_hash, "now": utcnow()}).rowcount == 1


_CLAIM_REFRESH = (update(RefreshToken)
                  .where(RefreshToken.token_hash == bindparam("hash"), RefreshToken.used_at.is_(None))
                  .values(used_at=bindparam("now")))
