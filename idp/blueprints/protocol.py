"""The back-channel protocol endpoints: token, revocation, introspection, userinfo."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6750.errors import InsufficientScopeError, InvalidTokenError
from flask import Blueprint, Response, current_app, jsonify, request

from idp.acting import acting_claims
from idp.oauth.claims import released_claims
from idp.oauth.tokens import live_access_token
from idp.services import db, reading_db, services

bp = Blueprint("protocol", __name__)


def _server() -> Any:
    return current_app.extensions["authlib"]


def _committed(response: Response) -> Response:
    # Error paths commit too: a replayed code or refresh token revokes its family, and a
    # client assertion's jti is spent even when the grant then fails.
    db().commit()
    return response


@bp.post("/token")
def token() -> Response:
    return _committed(_server().create_token_response())


@bp.post("/revoke")
def revoke() -> Response:
    return _committed(_server().create_endpoint_response("revocation"))


@bp.post("/introspect")
def introspect() -> Response:
    response: Response = _server().create_endpoint_response("introspection")
    response.headers["Cache-Control"] = "no-store"
    return _committed(response)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """OIDC Core §5.3: the claims of the consented scopes for the token's subject."""
    session = reading_db()  # userinfo writes nothing
    source = live_access_token(services().keyring, session, services().settings, bearer_token())
    if source is None:
        raise InvalidTokenError(realm="userinfo")
    scopes = set(source.scope.split())
    if "openid" not in scopes:
        raise InsufficientScopeError()
    requested = (source.claims_request or {}).get("userinfo")
    claims = {"sub": source.client.subject_for(source.account_id)}
    claims |= released_claims(source.account, scopes, by_scope=True, requested=requested)
    claims |= acting_claims(session, source.client, source.delegation_id)  # delegation.md: as in the tokens
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    return response


def bearer_token() -> str:
    """RFC 6750 §2.1 (header) or §2.2 (form body), never both."""
    header = request.headers.get("Authorization", "")
    in_body = request.form.get("access_token") if request.method == "POST" else None
    scheme, _, value = header.partition(" ")
    if header and in_body:
        raise InvalidTokenError(description="Send the token in one place only.")
    if in_body:
        return in_body
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidTokenError(realm="userinfo")
    return value.strip()
