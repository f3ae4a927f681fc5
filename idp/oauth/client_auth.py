"""``private_key_jwt`` client authentication (RFC 7523 §2.2, OIDC Core §9) via Authlib.

Assertions are single use (``jti`` remembered while it could still be accepted), fresh
(``iat`` at most ``IDP_CLIENT_ASSERTION_MAX_AGE`` seconds old: common RP libraries such as
Authlib's set ``exp`` an hour ahead, so freshness is judged by ``iat``), and their ``aud``
must be the issuer, the token endpoint, or the endpoint receiving them (RFC 7523 §3:
Authlib's client addresses revocation and introspection assertions to those endpoints).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import requests
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import request
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from idp.db import run, utcnow
from idp.models import Client, ClientAssertionJti
from idp.services import db, services

JWKS_URI_CACHE_SECONDS = 300
_jwks_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks_lock = threading.Lock()


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=30)

    def get_audiences(self) -> list[str]:
        settings = services().settings
        return [settings.issuer, settings.endpoint("/token"), settings.endpoint(request.path)]

    def verify_claims(self, claims: Any) -> None:
        super().verify_claims(claims)
        issued_at = claims.get("iat")
        if not isinstance(issued_at, int) or isinstance(issued_at, bool):
            raise InvalidClientError(description="The client assertion needs a numeric 'iat'.")
        age = time.time() - issued_at
        if age > services().settings.client_assertion_max_age + self.leeway or age < -self.leeway:
            raise InvalidClientError(description="The client assertion is not fresh.")

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        """Remember the ``jti`` until the assertion expires; a second use is refused."""
        if not isinstance(jti, str) or not 0 < len(jti) <= 200:
            return False
        session = db()
        # Once iat is too old the assertion is refused anyway, so the jti need not outlive that.
        last_accepted = int(claims["iat"]) + services().settings.client_assertion_max_age + self.leeway
        expires_at = dt.datetime.fromtimestamp(min(int(claims["exp"]), last_accepted), dt.UTC)
        return _remember(session, str(claims["sub"]), jti, expires_at)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        jwks = client.jwks or (_fetch_jwks(client.jwks_uri) if client.jwks_uri else None)
        if not jwks or not jwks.get("keys"):
            raise InvalidClientError(description="The client has no registered keys.")
        try:
            return KeySet.import_key_set(jwks)
        except Exception:  # joserfc raises several types for malformed registered keys
            raise InvalidClientError(description="The client's registered keys are not usable.") from None


def _remember(session: Session, client_id: str, jti: str, expires_at: dt.datetime) -> bool:
    """True if the jti is new. One INSERT … ON CONFLICT DO NOTHING: a concurrent first use holds
    the unique key until it commits, so exactly one of two racing uses gets a row (RFC 7523 §3)."""
    statement = _REMEMBER[session.get_bind().dialect.name == "postgresql"]
    return run(session, statement, {"client_id": client_id, "jti": jti, "expires_at": expires_at}).first() is not None


def _remember_statement(insert: Any) -> Any:
    seen = ClientAssertionJti.__table__
    return insert(seen).on_conflict_do_nothing().returning(seen.c.jti)


_REMEMBER = {True: _remember_statement(postgresql.insert), False: _remember_statement(sqlite.insert)}


def _fetch_jwks(uri: str) -> dict[str, Any]:
    now = time.monotonic()
    with _jwks_lock:
        cached = _jwks_cache.get(uri)
        if cached and now - cached[0] < JWKS_URI_CACHE_SECONDS:
            return cached[1]
    try:
        response = requests.get(uri, timeout=5)
        response.raise_for_status()
        jwks = response.json()
    except (requests.RequestException, ValueError):
        raise InvalidClientError(description="The client's jwks_uri could not be fetched.") from None
    with _jwks_lock:
        _jwks_cache[uri] = (now, jwks)
    return jwks


def prune_expired_jtis() -> int:
    """Housekeeping for the replay cache."""
    result = db().execute(delete(ClientAssertionJti).where(ClientAssertionJti.expires_at < utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]
