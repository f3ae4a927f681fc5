"""The agency's side of a browser flow: the authorization URL (PKCE S256) and the code exchange."""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Page

from tests.idp.flows import Pkce, pkce

if TYPE_CHECKING:
    from tests.browser.conftest import LiveServer

TIMEOUT = 10


@dataclasses.dataclass
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    pkce: Pkce


def authorization_request(server: LiveServer, scope: str = "openid profile email",
                          **extra: str) -> AuthorizationRequest:
    challenge, state, nonce = pkce(), secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    params = {"response_type": "code", "client_id": server.client_id, "redirect_uri": server.redirect_uri,
              "scope": scope, "state": state, "nonce": nonce, "code_challenge": challenge.challenge,
              "code_challenge_method": "S256", **extra}
    return AuthorizationRequest(url=f"{server.url}/authorize?{urlencode(params)}", state=state, nonce=nonce,
                                pkce=challenge)


def returned_code(server: LiveServer, page: Page, request: AuthorizationRequest) -> str:
    """Wait for the redirect back to the relying party; the code, after checking ``state`` and ``iss``."""
    page.wait_for_url(lambda url: url.startswith(server.redirect_uri + "?"))
    params = {key: values[0] for key, values in parse_qs(urlsplit(page.url).query).items()}
    assert params.get("state") == request.state and params.get("iss") == server.url, params
    assert "code" in params, params
    return params["code"]


def id_token_claims(server: LiveServer, code: str, request: AuthorizationRequest) -> dict[str, Any]:
    """Redeem the code as the public client and return the verified ID token's claims."""
    response = requests.post(f"{server.url}/token", timeout=TIMEOUT, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": server.redirect_uri,
        "client_id": server.client_id, "code_verifier": request.pkce.verifier,
    })
    assert response.status_code == 200, response.text
    jwks = KeySet.import_key_set(requests.get(f"{server.url}/jwks.json", timeout=TIMEOUT).json())
    claims = jwt.decode(response.json()["id_token"], jwks).claims
    assert claims["iss"] == server.url and claims["aud"] == server.client_id and claims["nonce"] == request.nonce
    return dict(claims)
