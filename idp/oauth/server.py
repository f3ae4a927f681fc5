"""The Authlib authorization server wired to our storage, grants and endpoints."""

from __future__ import annotations

from typing import Any

import jwt as pyjwt
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter as _IssuerParameter
from flask import g
from flask import request as flask_request

from idp.acting import acting_claims
from idp.consent_ledger import ledger, record_disclosure
from idp.login_sessions import record_participant
from idp.models import AccessToken, Client, RefreshToken
from idp.oauth.client_auth import PrivateKeyJWT, authenticate_client_secret_basic
from idp.oauth.grants import AUTH_METHODS, AuthorizationCodeGrant, OpenIDCode, RefreshTokenGrant, S256CodeChallenge
from idp.oauth.tokens import (
    LiveAccessToken,
    active_access_token,
    delegation_holds,
    encode_access_token,
    link_code,
    live_access_token,
    new_refresh_token,
    record_tokens,
    revoke_family,
    start_family,
    token_hash,
)
from idp.services import db, services
from store.db import utcnow


class AuthorizationServer(FlaskAuthorizationServer):
    # types-Authlib narrows the result to FlaskOAuth2Request; Authlib takes any OAuth2Request.
    def create_oauth2_request(self, request: Any) -> OAuth2Request:  # type: ignore[override]
        # The authorize view resumes stored requests after sign-in and consent.
        if isinstance(request, OAuth2Request):
            return request
        return FlaskOAuth2Request(flask_request)


def query_client(client_id: Any) -> Client | None:
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        return None
    return db().get(Client, client_id)


def generate_token(grant_type: str, client: Client, user: Any = None, scope: str | None = None,
                   expires_in: int | None = None, include_refresh_token: bool = True) -> dict[str, Any]:
    settings, keyring = services().settings, services().keyring
    token: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": encode_access_token(keyring, db(), settings, client, user, scope or "",
                                            extra=g.get("acting_claims")),
        "expires_in": settings.access_token_ttl,
        "scope": scope or "",
    }
    if include_refresh_token:
        token["refresh_token"] = new_refresh_token()
    return token


def save_token(token: dict[str, Any], request: Any) -> None:
    session, settings = db(), services().settings
    # We signed this JWT a moment ago; read back its jti/iat/exp to record it.
    claims = pyjwt.decode(token["access_token"], options={"verify_signature": False})
    if request.authorization_code is not None:
        code = request.authorization_code
        family = start_family(
            session, settings, client_id=code.client_id, account_id=code.account_id, session_id=code.session_id,
            scope=token["scope"], claims_request=code.claims_request, auth_time=code.auth_time, acr=code.acr,
            amr=code.amr, delegation_id=code.delegation_id, actor_account_id=code.actor_account_id,
        )
        link_code(session, code.code_hash, family.id)
        record_participant(session, code.session_id, code.client_id)
        refresh_scope = token["scope"]
    else:
        old: RefreshToken = request.refresh_token
        family, refresh_scope = old.family, old.scope  # RFC 6749 §6: same scope as the old token
    record_tokens(session, settings, family, claims, token.get("refresh_token"), refresh_scope)
    # consent-ledger.md: the disclosure is logged in the transaction that issues the token.
    record_disclosure(session, ledger(), request.client, request.user, token["scope"])


class IssuerParameter(_IssuerParameter):
    def get_issuer(self) -> str:
        return services().settings.issuer  # RFC 9207 §2


class HintIsOnlyAHint:
    """RFC 7009 §2.1 / RFC 7662 §2.1: ``token_type_hint`` only guides the search, so an
    unrecognised hint is ignored rather than refused."""

    def check_params(self, request: Any, client: Client) -> None:
        token = request.form.get("token")
        if not token or len(token) > 4096:
            raise InvalidRequestError("Missing or oversized 'token'.")


class RevocationEndpoint(HintIsOnlyAHint, _RevocationEndpoint):
    """RFC 7009. Revoking a refresh token revokes its whole family (§2.1)."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> AccessToken | RefreshToken | None:
        return _find_token(token_string, token_type_hint)

    def revoke_token(self, token: AccessToken | RefreshToken, request: Any) -> None:
        if isinstance(token, RefreshToken):
            revoke_family(db(), token.family_id, "revoked_by_client")
        else:
            token.revoked_at = token.revoked_at or utcnow()


class IntrospectionEndpoint(HintIsOnlyAHint, _IntrospectionEndpoint):
    """RFC 7662, for authenticated clients of the agency the token was issued to."""

    CLIENT_AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> LiveAccessToken | RefreshToken | None:
        if token_string.count(".") == 2:  # read-only here: plain columns, not ORM records (see _find_token)
            return live_access_token(services().keyring, db(), services().settings, token_string)
        return _find_refresh_token(token_string)

    def check_permission(self, token: LiveAccessToken | RefreshToken, client: Client, request: Any) -> bool:
        owner = token.client if isinstance(token, LiveAccessToken) else token.family.client
        return owner.agency_id == client.agency_id

    def introspect_token(self, token: LiveAccessToken | RefreshToken) -> dict[str, Any]:
        if isinstance(token, LiveAccessToken):
            return self._access_token_payload(token)
        family = token.family
        return {
            "active": True,
            "scope": token.scope,
            "client_id": family.client_id,
            "sub": family.client.subject_for(family.account_id),
            "iss": services().settings.issuer,
            "iat": int(token.issued_at.timestamp()),
            "exp": int(token.expires_at.timestamp()),
            "auth_time": int(family.auth_time.timestamp()),
            "acr": family.acr,
            "token_type": "refresh_token",
        } | acting_claims(db(), family.client, family.delegation_id)

    def _access_token_payload(self, token: LiveAccessToken) -> dict[str, Any]:
        settings = services().settings
        return {
            "active": True,
            "scope": token.scope,
            "client_id": token.client.client_id,
            "sub": token.client.subject_for(token.account_id),
            "iss": settings.issuer,
            "iat": int(token.issued_at.timestamp()),
            "exp": int(token.expires_at.timestamp()),
            "auth_time": int(token.auth_time.timestamp()),
            "acr": token.acr,
            "token_type": "Bearer",
            "jti": token.jti,
            "aud": settings.endpoint("/userinfo"),
        } | acting_claims(db(), token.client, token.delegation_id)


def _find_token(token_string: str, hint: str | None) -> AccessToken | RefreshToken | None:
    """Find a live token of ours; dead ones are treated as unknown (RFC 7662 §2.2 'active': false).

    Our two token types cannot be confused (a JWT has two dots, a refresh token none), so the
    hint is not needed to search both (RFC 7009 §2.1).
    """
    if token_string.count(".") == 2:
        return active_access_token(services().keyring, db(), services().settings, token_string)
    return _find_refresh_token(token_string)


def _find_refresh_token(token_string: str) -> RefreshToken | None:
    """A live refresh token of ours (a string without the two dots of a JWT)."""
    session = db()
    record = session.get(RefreshToken, token_hash(token_string))
    if record is None:
        return None
    family, now = record.family, utcnow()
    dead = record.revoked_at or record.used_at or family.revoked_at or record.expires_at <= now
    return None if dead or family.account.status != "active" or not delegation_holds(family) else record


def create_authorization_server() -> AuthorizationServer:
    server = AuthorizationServer(query_client=query_client, save_token=save_token)
    # types-Authlib wants a BearerTokenGenerator; Authlib calls any callable with its arguments
    server.register_token_generator("default", generate_token)  # type: ignore[arg-type]
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_client_auth_method("client_secret_basic", authenticate_client_secret_basic)  # replaces Authlib's
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDCode()])
    server.register_grant(RefreshTokenGrant)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_extension(IssuerParameter())
    return server
