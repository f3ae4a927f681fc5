"""Client authentication: ``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9) via Authlib, and the
one parser of HTTP Basic client credentials (RFC 6749 §2.3.1, RFC 7617 §2).

Assertions are single use (``jti`` remembered while it could still be accepted), fresh
(``iat`` at most ``IDP_CLIENT_ASSERTION_MAX_AGE`` seconds old: common RP libraries such as
Authlib's set ``exp`` an hour ahead, so freshness is judged by ``iat``), and their ``aud``
must be the issuer, the token endpoint, or the endpoint receiving them (RFC 7523 §3:
Authlib's client addresses revocation and introspection assertions to those endpoints).
A ``client_id`` sent beside the assertion must name the assertion's client (RFC 7521 §4.2).

Everything that can be checked without the client's keys is checked before they are looked up,
because a ``jwks_uri`` client's keys may need a fetch (idp/oauth/client_keys.py): the assertion is
well-formed, ``iss`` = ``sub`` names an existing client that uses this method, ``aud``, ``exp`` and
``iat`` hold. An assertion that cannot succeed costs no outbound request.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from idp import json_input
from idp.models import Client, ClientAssertionJti
from idp.oauth.client_keys import ClientKeyCache, KeysUnavailable
from idp.outbound import DestinationPolicy
from idp.services import db, services
from keys.jwk import b64url_decode
from store.db import run, utcnow

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")  # RFC 7617 §2: not in a user-id or password
CLIENT_KEYS = ClientKeyCache()  # process-wide, like the outbound slots it draws on


class PrivateKeyJWT(JWTBearerClientAssertion):
    # types-Authlib declares this Final, yet Authlib reads it from the subclass to name the method
    CLIENT_AUTH_METHOD = "private_key_jwt"  # type: ignore[misc]

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=30)

    def get_audiences(self) -> list[str]:
        settings = services().settings
        return [settings.issuer, settings.endpoint("/token"), settings.endpoint(request.path)]

    def extract_assertion(self, assertion: str) -> tuple[Any, dict[str, Any]]:
        """Authlib reads the claims unverified to find the client; check them before its keys.
        Authlib and joserfc parse the header and claims with plain ``json``: parse them strictly
        first (idp.json_input), so a deeply nested or non-UTF-8 segment is invalid_client, not a 500."""
        _parse_segments_strictly(assertion)
        headers, claims = super().extract_assertion(assertion)
        _check_named_client(claims)
        self.check_claims_before_keys(claims)
        return headers, claims

    def check_claims_before_keys(self, claims: dict[str, Any]) -> None:
        """RFC 7523 §3 items 1, 2, 3 and 4 (iss, sub, aud, exp), on claims not yet verified."""
        registry = jwt.JWTClaimsRegistry(leeway=self.leeway, iss={"essential": True}, sub={"essential": True},
                                         aud={"essential": True, "values": self.get_audiences()},
                                         exp={"essential": True})
        try:
            registry.validate(claims)
        except (JoseError, TypeError, ValueError) as error:
            raise InvalidClientError(description=getattr(error, "description", "Invalid claims.")) from None
        if claims["sub"] != claims["iss"]:
            raise InvalidClientError(description="Issuer and Subject MUST match.")
        self.check_freshness(claims)

    def verify_claims(self, claims: Any) -> None:
        super().verify_claims(claims)
        self.check_freshness(claims)

    def check_freshness(self, claims: Any) -> None:
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
        if not client.check_endpoint_auth_method(self.CLIENT_AUTH_METHOD, "token"):  # before any fetch
            raise InvalidClientError(description=f"The client cannot authenticate with {self.CLIENT_AUTH_METHOD}.")
        jwks = client.jwks or (registered_keys(client.client_id, client.jwks_uri) if client.jwks_uri else None)
        if not jwks or not jwks.get("keys"):
            raise InvalidClientError(description="The client has no registered keys.")
        try:
            return KeySet.import_key_set({"keys": jwks["keys"]})
        except Exception:  # joserfc raises several types for malformed registered keys
            raise InvalidClientError(description="The client's registered keys are not usable.") from None


def _parse_segments_strictly(assertion: str) -> None:
    """The JWS header and payload (RFC 7515 §7.1) must be strict JSON; the rest is Authlib's."""
    try:
        for segment in assertion.split(".")[:2]:
            json_input.loads(b64url_decode(segment))
    except ValueError:  # binascii.Error, non-ASCII text and UnsafeJSON are all ValueErrors
        raise InvalidClientError(description="Invalid JWT assertion.") from None


def _check_named_client(claims: dict[str, Any]) -> None:
    """RFC 7521 §4.2: a ``client_id`` parameter, if present, MUST identify the same client as
    the assertion, whose ``iss`` and ``sub`` are the client_id (RFC 7523 §3)."""
    for named in request.form.getlist("client_id"):
        if named != claims.get("sub") or named != claims.get("iss"):
            raise InvalidClientError(description="client_id does not match the client assertion.")


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The (client_id, client_secret) of a Basic ``Authorization`` header; None if there is none.

    RFC 7617 §2: base64 of ``user-id ":" password`` in UTF-8 (no control characters); RFC 6749
    §2.3.1: each part form-urlencoded first. Anything else is invalid_client with 401, since the
    client tried to authenticate with the header (RFC 6749 §5.2).
    """
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user_id, colon, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        credentials = unquote_plus(user_id, errors="strict"), unquote_plus(password, errors="strict")
    except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII base64 text
        raise _malformed_basic() from None
    if not colon or any(CONTROL_CHARACTERS.search(part) for part in credentials):
        raise _malformed_basic()
    return credentials


def _malformed_basic() -> InvalidClientError:
    return InvalidClientError(status_code=401, description="The Basic client credentials are malformed.")


def authenticate_client_secret_basic(query_client: Callable[[str], Client | None], request: Any) -> Client | None:
    """Authlib's ``client_secret_basic`` hook, on :func:`basic_credentials`; a wrong or unknown
    client answers like a wrong secret (Authlib ends the search with 401)."""
    credentials = basic_credentials(request.headers.get("Authorization"))
    if credentials is None:
        return None
    client = query_client(credentials[0])
    return client if client is not None and client.check_client_secret(credentials[1]) else None


def _remember(session: Session, client_id: str, jti: str, expires_at: dt.datetime) -> bool:
    """True if the jti is new. One INSERT … ON CONFLICT DO NOTHING: a concurrent first use holds
    the unique key until it commits, so exactly one of two racing uses gets a row (RFC 7523 §3)."""
    statement = _REMEMBER[session.get_bind().dialect.name == "postgresql"]
    return run(session, statement, {"client_id": client_id, "jti": jti, "expires_at": expires_at}).first() is not None


def _remember_statement(insert: Any) -> Any:
    seen = ClientAssertionJti.__table__
    return insert(seen).on_conflict_do_nothing().returning(seen.c.jti)


_REMEMBER = {True: _remember_statement(postgresql.insert), False: _remember_statement(sqlite.insert)}


def registered_keys(client_id: str, jwks_uri: str) -> dict[str, Any]:
    try:
        return CLIENT_KEYS.keys(client_id, jwks_uri, DestinationPolicy.from_settings(services().settings))
    except KeysUnavailable as error:
        raise InvalidClientError(description=str(error)) from None


def prune_expired_jtis() -> int:
    """Housekeeping for the replay cache."""
    result = db().execute(delete(ClientAssertionJti).where(ClientAssertionJti.expires_at < utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]
