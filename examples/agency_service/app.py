"""A demo agency service: a real OpenID Connect relying party built on Authlib's Flask client.

It signs citizens in with the authorization code flow (PKCE S256 and a nonce), authenticates
to the token endpoint with ``private_key_jwt`` (RFC 7523, short-lived assertions), has Authlib
validate the ID token against the provider's JWKS, reads userinfo, and signs out through
RP-initiated logout. Tokens live in the (signed) Flask session cookie: fine for a demo only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from flask import Blueprint, Flask, Response, current_app, redirect, render_template_string, request, session, url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError
from joserfc.jwk import import_key

PROVIDER_NAME = "idp"
SCOPE = "openid profile email"
TOKEN_KEYS = ("access_token", "refresh_token", "id_token", "token_type", "expires_at", "scope")
PROFILE_CLAIMS = ("given_name", "family_name", "email", "email_verified")

bp = Blueprint("service", __name__)


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    name: str
    issuer: str
    base_url: str
    client: Any  # Authlib's FlaskOAuth2App for the provider


def create_service(*, name: str, issuer: str, client_id: str, private_jwk: dict[str, Any], base_url: str,
                   secret_key: str) -> Flask:
    """An agency web service registered at ``issuer`` as ``client_id``, reachable at ``base_url``."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        # Every demo service shares the host 127.0.0.1 with the provider, and cookies ignore
        # ports: each service needs its own cookie name.
        SESSION_COOKIE_NAME=cookie_name(base_url),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=base_url.startswith("https:"),
    )
    issuer = issuer.rstrip("/")
    client = register_provider(app, issuer, client_id, private_jwk)
    app.extensions["agency_service"] = ServiceConfig(name=name, issuer=issuer, base_url=base_url.rstrip("/"),
                                                     client=client)
    app.register_blueprint(bp)
    return app


def cookie_name(base_url: str) -> str:
    return "service_" + hashlib.sha256(base_url.encode()).hexdigest()[:12]


def register_provider(app: Flask, issuer: str, client_id: str, private_jwk: dict[str, Any]) -> Any:
    key = import_key(private_jwk)
    oauth = OAuth(app)
    return oauth.register(  # type: ignore[no-untyped-call]  # types-Authlib leaves OAuth.register unannotated
        PROVIDER_NAME,
        client_id=client_id,
        client_secret=key,  # what Authlib's private_key_jwt signer signs with
        server_metadata_url=issuer + "/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "private_key_jwt"},
        client_auth_methods=[PrivateKeyJWT(alg=private_jwk.get("alg", "ES256"), headers={"kid": key.kid})],
    )


def _config() -> ServiceConfig:
    return current_app.extensions["agency_service"]  # type: ignore[no-any-return]


def _client() -> Any:
    return _config().client


@bp.get("/")
def home() -> str:
    return render_template_string(HOME_PAGE, name=_config().name, user=session.get("user"))


@bp.get("/login")
def login() -> ResponseReturnValue:
    try:
        # Authlib adds state and the PKCE challenge (S256) and keeps them, with the nonce, in
        # this session until the callback.
        return _client().authorize_redirect(  # type: ignore[no-any-return]
            _config().base_url + "/callback", nonce=secrets.token_urlsafe(24))
    except requests.RequestException:
        return error_page("temporarily_unavailable", "The sign-in service could not be reached.", 502)


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    config = _config()
    if "error" in request.args:
        return error_page(request.args["error"], request.args.get("error_description", ""))
    if request.args.get("iss", config.issuer) != config.issuer:  # RFC 9207 mix-up defence
        return error_page("invalid_request", "The response came from an unexpected issuer.")
    try:
        token = _client().authorize_access_token()  # exchanges the code, validates the ID token
        userinfo = _client().userinfo(token=token)
    except (AuthlibBaseError, JoseError, requests.RequestException) as error:
        return error_page(getattr(error, "error", None) or "sign_in_failed", _describe(error))
    if "userinfo" not in token:
        return error_page("invalid_response", "The sign-in service returned no ID token.")
    claims = dict(token["userinfo"])
    if userinfo.get("sub") != claims.get("sub"):  # OIDC Core §5.3.2
        return error_page("invalid_userinfo", "The userinfo response is for a different person.")
    sign_in_locally(token, claims, dict(userinfo))
    return redirect(url_for("service.home"))


def sign_in_locally(token: dict[str, Any], claims: dict[str, Any], userinfo: dict[str, Any]) -> None:
    session.clear()
    session["tokens"] = {key: token[key] for key in TOKEN_KEYS if key in token}
    profile = {key: userinfo.get(key, claims.get(key)) for key in PROFILE_CLAIMS}
    session["user"] = {"sub": claims["sub"], **profile, "acting": acting(claims)}


def acting(claims: dict[str, Any]) -> dict[str, Any] | None:
    """delegation.md "What agencies receive": ``sub`` is the person served, ``act`` who is acting
    and, nested (RFC 8693 §4.1), who passed the delegation on to them."""
    delegation, actor = claims.get("delegation"), claims.get("act")
    if not isinstance(delegation, dict) or not isinstance(actor, dict):
        return None
    upstream = actor.get("act")
    return {"type": str(delegation.get("type", "")), "mode": str(delegation.get("mode", "")),
            "actor": str(actor.get("sub", "")),
            "passed_on_by": str(upstream.get("sub", "")) if isinstance(upstream, dict) else None}


def _describe(error: Exception) -> str:
    return str(getattr(error, "description", None) or error) or "Signing in did not work."


@bp.get("/logout")
def logout() -> ResponseReturnValue:
    """Sign out here, then ask the provider to end its session and send the citizen back."""
    id_token = session.get("tokens", {}).get("id_token")
    session.clear()
    if not id_token:
        return redirect(url_for("service.home"))
    client = _client()
    try:
        result = client.create_logout_url(post_logout_redirect_uri=_config().base_url + "/",
                                          id_token_hint=id_token, client_id=client.client_id)
    except (requests.RequestException, RuntimeError):
        return redirect(url_for("service.home"))
    return redirect(result["url"])


def error_page(error: str, description: str, status: int = 400) -> Response:
    body = render_template_string(ERROR_PAGE, name=_config().name, error=error, description=description)
    return Response(body, status=status, mimetype="text/html")


LAYOUT_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ name }}</title></head><body>"""

HOME_PAGE = LAYOUT_HEAD + """
<h1>{{ name }}</h1>
{% if user %}
<p id="status">Signed in to {{ name }}</p>
{% if user.acting %}
<p id="acting"><strong>You are acting for
{%- set served = (user.given_name ~ " " ~ user.family_name) if user.given_name else "someone not sharing their name" %}
{{ served }}
as their {{ user.acting.type }}</strong>
{%- if user.acting.mode == "view" %} (you can see their details, not act){% endif %}.</p>
<p>Acting: <code id="actor">{{ user.acting.actor }}</code></p>
{% if user.acting.passed_on_by -%}
<p>Passed on to them by: <code id="passed-on-by">{{ user.acting.passed_on_by }}</code></p>
{%- endif %}
{% endif %}
<dl>
  <dt>Your identifier at this agency (sub)</dt><dd id="sub">{{ user.sub }}</dd>
  <dt>Given name</dt><dd id="given_name">{{ user.given_name or "not shared" }}</dd>
  <dt>Family name</dt><dd id="family_name">{{ user.family_name or "not shared" }}</dd>
  <dt>Email</dt><dd id="email">{{ user.email or "not shared" }}</dd>
</dl>
<p><a href="{{ url_for('service.logout') }}">Sign out</a></p>
{% else %}
<p id="status">You are not signed in.</p>
<form method="get" action="{{ url_for('service.login') }}">
  <button type="submit">Sign in with Public Services Sign-in</button>
</form>
{% endif %}
</body></html>"""

ERROR_PAGE = LAYOUT_HEAD + """
<h1>Sorry, you could not be signed in to {{ name }}</h1>
<p>The sign-in service said: <code id="error">{{ error }}</code></p>
{% if description %}<p id="error_description">{{ description }}</p>{% endif %}
<p><a href="{{ url_for('service.home') }}">Back to {{ name }}</a></p>
</body></html>"""
