"""One complete OpenID Connect flow over real HTTP, with Authlib's client as the relying party.

A real server (werkzeug) serves the provider on a loopback port. ``requests`` plays the
citizen's browser (following the provider's redirects by hand, so the redirect back to the
relying party is captured rather than followed) and Authlib's ``OAuth2Session`` plays the
relying party, authenticating with ``private_key_jwt`` (RFC 7523 §2.2).

discovery → authorize (PKCE S256) → sign in → consent → code (state, iss) → token → ID token
→ userinfo → refresh rotation and reuse detection → single sign-on → revoke → introspect →
RP-initiated logout → ``prompt=none`` gives ``login_required``.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from werkzeug.serving import BaseWSGIServer, make_server

from idp.accounts import create_account
from idp.app import build_services, create_app
from idp.config import Settings
from idp.outbound import DestinationPolicy
from idp.registry import ClientMetadata, create_agency, create_client

TIMEOUT = 10
PASSWORD = "correct horse battery staple"
SCOPE = "openid profile email offline_access"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
SCOPE_BOX = re.compile(r'name="scope" type="checkbox" value="([^"]+)"')


# --- the provider, running ------------------------------------------------------------------

@dataclasses.dataclass
class Provider:
    issuer: str
    client_id: str
    client_key: ECKey
    redirect_uri: str
    post_logout_redirect_uri: str
    email: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def provider(tmp_path: Any, database_url: str, settings: Settings) -> Iterator[Provider]:
    port, rp_port = free_port(), free_port()
    # The keyring's private keys are sealed with the key-encryption key and the database is
    # shared with the rest of the suite, so use the suite's KEK to read the keys it made.
    server_settings = Settings.from_env(
        environ={}, issuer=f"http://127.0.0.1:{port}", instance_path=tmp_path, database_url=database_url,
        key_cache_seconds=1, key_encryption_key=settings.key_encryption_key,
    )
    services = build_services(server_settings)
    client_key = ECKey.generate_key("P-256", private=True,
                                    parameters={"kid": f"rp-{secrets.token_hex(4)}", "alg": "ES256", "use": "sig"})
    rp_base = f"http://127.0.0.1:{rp_port}"
    email = f"e2e-{secrets.token_hex(6)}@example.com"
    with services.sessions.begin() as session:
        services.keyring.ensure(session)
        agency, _token = create_agency(session, "End-to-end Agency")
        client, _secret = create_client(session, agency, ClientMetadata(
            client_name="End-to-end Service", redirect_uris=[f"{rp_base}/cb"],
            token_endpoint_auth_method="private_key_jwt", jwks={"keys": [client_key.as_dict(private=False)]},
            post_logout_redirect_uris=[f"{rp_base}/signed-out"], scope=SCOPE,
        ), destinations=DestinationPolicy.from_settings(services.settings))
        create_account(session, email=email, given_name="Grace", family_name="Hopper", password=PASSWORD)
        client_id = client.client_id

    server = make_server("127.0.0.1", port, create_app(server_settings, services=services), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-idp", daemon=True)
    thread.start()
    try:
        yield Provider(issuer=server_settings.issuer, client_id=client_id, client_key=client_key,
                       redirect_uri=f"{rp_base}/cb", post_logout_redirect_uri=f"{rp_base}/signed-out", email=email)
    finally:
        shutdown(server, thread)
        services.engine.dispose()


def shutdown(server: BaseWSGIServer, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=TIMEOUT)


# --- the relying party: Authlib's client ------------------------------------------------------

def relying_party(provider: Provider, metadata: dict[str, Any], responses: list[requests.Response]) -> OAuth2Session:
    """An Authlib session that authenticates with its ES256 key at every protocol endpoint,
    using Authlib's stock ``PrivateKeyJWT`` with its defaults (assertions valid for an hour,
    addressed to the endpoint being called)."""
    auth = PrivateKeyJWT(headers={"kid": provider.client_key.kid}, alg="ES256")
    session = OAuth2Session(
        client_id=provider.client_id, client_secret=provider.client_key, scope=SCOPE,
        redirect_uri=provider.redirect_uri, code_challenge_method="S256",
        token_endpoint_auth_method=auth.name, revocation_endpoint_auth_method=auth.name,
        default_timeout=TIMEOUT,
    )
    session.register_client_auth_method(auth)

    def keep(response: requests.Response) -> requests.Response:
        responses.append(response)
        return response

    session.register_compliance_hook("access_token_response", keep)
    session.register_compliance_hook("refresh_token_response", keep)
    return session


@dataclasses.dataclass
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


def authorization_request(rp: OAuth2Session, metadata: dict[str, Any], **extra: str) -> AuthorizationRequest:
    verifier, nonce, state = generate_token(48), generate_token(20), generate_token(20)
    url, _state = rp.create_authorization_url(metadata["authorization_endpoint"], state=state,
                                              code_verifier=verifier, nonce=nonce, **extra)
    query = params_of(url)
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)


def validate_id_token(id_token: str, jwks: KeySet, provider: Provider, *, nonce: str,
                      access_token: str) -> dict[str, Any]:
    """What an OpenID Connect RP checks (OIDC Core §3.1.3.7), with Authlib's CodeIDToken."""
    token = jwt.decode(id_token, jwks, algorithms=["ES256"])
    options = {"iss": {"essential": True, "value": provider.issuer},
               "aud": {"essential": True, "value": provider.client_id},
               "sub": {"essential": True}, "exp": {"essential": True}, "iat": {"essential": True},
               "auth_time": {"essential": True}, "sid": {"essential": True}, "at_hash": {"essential": True}}
    claims = CodeIDToken(token.claims, token.header, options,
                         params={"nonce": nonce, "access_token": access_token, "client_id": provider.client_id})
    claims.validate(leeway=5)  # iss, aud, exp, iat, nonce, at_hash, azp, auth_time, sid, sub
    assert token.header["alg"] == "ES256"
    assert claims["at_hash"] == create_half_hash(access_token, "ES256").decode()
    return dict(claims)


# --- the browser: requests, following the provider's redirects by hand ------------------------

@dataclasses.dataclass
class BrowserVisit:
    location: str  # where the provider finally sent the browser (off the provider)
    pages: list[str]  # provider paths the browser was shown along the way


def browse(browser: requests.Session, provider: Provider, url: str, *, password: str | None = None) -> BrowserVisit:
    """Follow redirects while they stay on the provider, signing in and allowing every scope
    when asked; stop at the first redirect away from the provider (never followed)."""
    pages: list[str] = []
    response = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(12):
        if response.is_redirect:
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(provider.issuer + "/"):
                return BrowserVisit(location=location, pages=pages)
            response = browser.get(location, allow_redirects=False, timeout=TIMEOUT)
            continue
        assert response.status_code == 200, f"{response.status_code} at {response.url}: {response.text[:500]}"
        path = urlsplit(response.url).path
        pages.append(path)
        if path == "/signin":
            assert password is not None, "the provider asked the citizen to sign in again"
            response = submit(browser, response, {"email": provider.email, "password": password})
        elif path.startswith("/consent/"):
            response = submit(browser, response, {"decision": "allow", "scope": SCOPE_BOX.findall(response.text)})
        else:
            raise AssertionError(f"unexpected page {path}")
    raise AssertionError("too many redirects")


def submit(browser: requests.Session, page: requests.Response, fields: dict[str, Any]) -> requests.Response:
    """Post a form of the page back to where it came from, with its hidden fields (csrf_token, interaction)."""
    hidden = dict(HIDDEN.findall(page.text))
    assert "csrf_token" in hidden, "form without a CSRF token"
    action = re.search(r'<form method="post"(?: action="([^"]*)")?', page.text)
    assert action is not None
    target = urljoin(page.url, action.group(1)) if action.group(1) else page.url
    return browser.post(target, data=hidden | fields, allow_redirects=False, timeout=TIMEOUT)


def params_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def expect_callback(visit: BrowserVisit, provider: Provider, request: AuthorizationRequest) -> dict[str, str]:
    """The redirect back to the RP: its URI, our state, and the issuer (RFC 9207)."""
    assert visit.location.startswith(provider.redirect_uri + "?"), visit.location
    params = params_of(visit.location)
    assert params.get("state") == request.state
    assert params.get("iss") == provider.issuer
    assert "error" not in params, params
    return params


def grant_error(call: Any) -> str:
    with pytest.raises(OAuthError) as caught:
        call()
    return str(caught.value.error)


# --- the flow --------------------------------------------------------------------------------

def test_complete_flow_over_http(provider: Provider) -> None:
    browser = requests.Session()
    responses: list[requests.Response] = []

    # Discovery (OIDC Discovery §4).
    response = requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == provider.issuer
    for name, path in [("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                       ("userinfo_endpoint", "/userinfo"), ("jwks_uri", "/jwks.json"),
                       ("revocation_endpoint", "/revoke"), ("introspection_endpoint", "/introspect"),
                       ("end_session_endpoint", "/logout")]:
        assert metadata[name] == provider.issuer + path
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    jwks = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=TIMEOUT).json())

    rp = relying_party(provider, metadata, responses)

    # Authorization: sign in, consent, and the code comes back with state and iss.
    first = authorization_request(rp, metadata)
    visit = browse(browser, provider, first.url, password=PASSWORD)
    assert visit.pages[0] == "/signin" and visit.pages[1].startswith("/consent/"), visit.pages
    callback = expect_callback(visit, provider, first)
    assert callback["code"]

    # Token, with private_key_jwt and the PKCE verifier.
    token = rp.fetch_token(metadata["token_endpoint"], authorization_response=visit.location,
                           state=first.state, code_verifier=first.code_verifier)
    assert responses[-1].headers["Cache-Control"] == "no-store"
    assert responses[-1].headers.get("Pragma") in (None, "no-cache")
    assert token["token_type"].lower() == "bearer"
    assert set(token["scope"].split()) == set(SCOPE.split())
    assert token["refresh_token"] and token["id_token"]

    id_claims = validate_id_token(token["id_token"], jwks, provider, nonce=first.nonce,
                                  access_token=token["access_token"])

    # Userinfo (OIDC Core §5.3): the same subject, and the consented email.
    response = rp.get(metadata["userinfo_endpoint"])
    assert response.status_code == 200, response.text
    userinfo = response.json()
    assert userinfo["sub"] == id_claims["sub"]
    assert userinfo["email"] == provider.email
    assert userinfo["given_name"] == "Grace"

    # Refresh rotation; replaying the old refresh token revokes the new one too (RFC 9700 §4.14.2).
    old_refresh = token["refresh_token"]
    refreshed = rp.refresh_token(metadata["token_endpoint"], refresh_token=old_refresh)
    assert responses[-1].headers["Cache-Control"] == "no-store"
    new_refresh = refreshed["refresh_token"]
    assert new_refresh != old_refresh
    assert refreshed["access_token"] != token["access_token"]
    assert grant_error(lambda: rp.refresh_token(metadata["token_endpoint"], refresh_token=old_refresh)) \
        == "invalid_grant"
    assert grant_error(lambda: rp.refresh_token(metadata["token_endpoint"], refresh_token=new_refresh)) \
        == "invalid_grant"

    # Single sign-on: no password prompt, no consent page, same login session.
    second = authorization_request(rp, metadata)
    visit = browse(browser, provider, second.url)
    assert visit.pages == []
    expect_callback(visit, provider, second)
    token = rp.fetch_token(metadata["token_endpoint"], authorization_response=visit.location,
                           state=second.state, code_verifier=second.code_verifier)
    sso_claims = validate_id_token(token["id_token"], jwks, provider, nonce=second.nonce,
                                   access_token=token["access_token"])
    assert sso_claims["sub"] == id_claims["sub"]
    assert sso_claims["sid"] == id_claims["sid"]
    assert sso_claims["auth_time"] == id_claims["auth_time"]

    # Introspection, then revocation of the refresh token ends the access token too (RFC 7009 §2.1).
    introspection = rp.introspect_token(metadata["introspection_endpoint"], token=token["access_token"],
                                        token_type_hint="access_token")
    assert introspection.status_code == 200, introspection.text
    assert introspection.json()["active"] is True
    assert introspection.json()["sub"] == id_claims["sub"]
    revocation = rp.revoke_token(metadata["revocation_endpoint"], token=token["refresh_token"],
                                 token_type_hint="refresh_token")
    assert revocation.status_code == 200, revocation.text
    introspection = rp.introspect_token(metadata["introspection_endpoint"], token=token["access_token"],
                                        token_type_hint="access_token")
    assert introspection.status_code == 200, introspection.text
    assert introspection.json() == {"active": False}
    assert rp.get(metadata["userinfo_endpoint"]).status_code == 401

    # RP-initiated logout (RP-Initiated Logout 1.0 §2–3), then prompt=none needs a sign-in.
    logout_state = generate_token(16)
    response = browser.get(metadata["end_session_endpoint"], allow_redirects=False, timeout=TIMEOUT, params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": provider.post_logout_redirect_uri,
        "state": logout_state,
    })
    assert response.status_code == 302, response.text[:500]
    location = response.headers["Location"]
    assert location.startswith(provider.post_logout_redirect_uri + "?")
    assert params_of(location) == {"state": logout_state}

    silent = authorization_request(rp, metadata, prompt="none")
    visit = browse(browser, provider, silent.url)
    assert visit.location.startswith(provider.redirect_uri + "?")
    params = params_of(visit.location)
    assert params["error"] == "login_required"
    assert params["state"] == silent.state
    assert params["iss"] == provider.issuer
    assert "code" not in params
