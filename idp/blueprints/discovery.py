"""Discovery (OIDC Discovery 1.0, RFC 8414) and the JWKS (RFC 7517), served with caching headers."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, request

from idp.assurance import ACR_VALUES_SUPPORTED
from idp.config import Settings
from idp.oauth.claims import CLAIMS_SUPPORTED, STANDARD_SCOPES
from idp.services import db, services

bp = Blueprint("discovery", __name__)

AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"]
ASSERTION_ALGS = ["ES256", "RS256", "PS256", "EdDSA"]


def provider_metadata(settings: Settings) -> dict[str, Any]:
    """Everything advertised here works; nothing that does not work is advertised."""
    e = settings.endpoint
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": e("/authorize"),
        "token_endpoint": e("/token"),
        "userinfo_endpoint": e("/userinfo"),
        "jwks_uri": e("/jwks.json"),
        "registration_endpoint": e("/register"),
        "revocation_endpoint": e("/revoke"),
        "introspection_endpoint": e("/introspect"),
        "end_session_endpoint": e("/logout"),
        "scopes_supported": list(STANDARD_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS[:3],
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": list(ACR_VALUES_SUPPORTED),
        "ui_locales_supported": ["en"],  # Welsh pages are planned, not yet translated
        "claim_types_supported": ["normal"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


def _cached_json(body: bytes, max_age: int, etag: str | None = None) -> Response:
    """What idp.fastpath answers too; this view serves only what it passes on."""
    etag = etag or hashlib.sha256(body).hexdigest()[:32]
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def configuration() -> Response:
    app_services = services()
    body = app_services.discovery_document
    return _cached_json(body, 3600)


@bp.get("/jwks.json")
def jwks() -> Response:
    body, etag = services().keyring.jwks_document(db())
    return _cached_json(body, max(services().settings.key_cache_seconds, 60), etag)
