"""Test helpers that act like a browser and a relying party against the Flask test client."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey
from werkzeug.test import TestResponse

from idp.models import Client

ISSUER = "http://localhost"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass
class RegisteredClient:
    model: Client
    secret: str | None
    key: ECKey | None

    @property
    def client_id(self) -> str:
        return self.model.client_id

    @property
    def redirect_uri(self) -> str:
        return self.model.redirect_uris[0]


@dataclasses.dataclass
class Pkce:
    verifier: str
    challenge: str


def pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return Pkce(verifier, challenge)


def authorize_params(rp: RegisteredClient, challenge: Pkce, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
        "scope": "openid profile email", "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge.challenge, "code_challenge_method": "S256",
    }
    params.update(extra)
    return {key: value for key, value in params.items() if value is not None}


def csrf_token(client: FlaskClient, path: str = "/signin") -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, "page has no CSRF token"
    return match.group(1)


def sign_in(client: FlaskClient, email: str, password: str, interaction: str | None = None) -> TestResponse:
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if interaction:
        data["interaction"] = interaction
    response = client.post("/signin", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def follow_to_client(client: FlaskClient, response: TestResponse, *, consent: str | None = "allow",
                     scopes: list[str] | None = None) -> TestResponse:
    """Follow the provider's redirects (answering the consent page) until it redirects away."""
    for _ in range(10):
        if response.status_code != 302:
            return response
        location = response.headers["Location"]
        if not location.startswith(("/", ISSUER)):
            return response
        path = location.removeprefix(ISSUER)
        if path.startswith("/consent/") and consent is not None:
            page = client.get(path).get_data(as_text=True)
            chosen = scopes if scopes is not None else re.findall(r'name="scope" type="checkbox" value="([^"]+)"', page)
            token = CSRF.search(page).group(1)  # type: ignore[union-attr]
            response = client.post(path, data={"decision": consent, "scope": chosen, "csrf_token": token})
        else:
            response = client.get(path)
    raise AssertionError("too many redirects")


def get_code(client: FlaskClient, rp: RegisteredClient, challenge: Pkce, **extra: str) -> dict[str, str]:
    """A signed-in browser obtains an authorization code for the client; returns the redirect query."""
    params = authorize_params(rp, challenge, **extra)
    response = follow_to_client(client, client.get("/authorize", query_string=params))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith(rp.redirect_uri)
    result = query(response.headers["Location"])
    assert result.get("state") == params["state"]
    return result | {"nonce": params.get("nonce", "")}


def client_assertion(rp: RegisteredClient, *, aud: str = f"{ISSUER}/token", jti: str | None = None,
                     lifetime: int = 60, **overrides: Any) -> str:
    assert rp.key is not None
    now = int(time.time())
    jti = secrets.token_urlsafe(16) if jti is None else jti
    claims = {"iss": rp.client_id, "sub": rp.client_id, "aud": aud, "jti": jti, "iat": now,
              "exp": now + lifetime} | overrides
    return jwt.encode({"alg": "ES256", "kid": rp.key.kid}, claims, rp.key)


def authenticated(rp: RegisteredClient, data: dict[str, str]) -> dict[str, Any]:
    """Form fields and headers for the client's registered authentication method."""
    method = rp.model.token_endpoint_auth_method
    headers: dict[str, str] = {}
    data = dict(data)
    if method == "private_key_jwt":
        data |= {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                 "client_assertion": client_assertion(rp)}
    elif method == "client_secret_basic":
        raw = f"{rp.client_id}:{rp.secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif method == "client_secret_post":
        data |= {"client_id": rp.client_id, "client_secret": rp.secret or ""}
    else:
        data["client_id"] = rp.client_id
    return {"data": data, "headers": headers}


def exchange_code(client: FlaskClient, rp: RegisteredClient, code: str, verifier: str) -> TestResponse:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier}
    return client.post("/token", **authenticated(rp, data))


def refresh(client: FlaskClient, rp: RegisteredClient, refresh_token: str, **extra: str) -> TestResponse:
    return client.post("/token", **authenticated(rp, {"grant_type": "refresh_token",
                                                      "refresh_token": refresh_token} | extra))


def tokens_for(client: FlaskClient, rp: RegisteredClient, **extra: str) -> dict[str, Any]:
    """The whole front channel and the code exchange: the token response body."""
    challenge = pkce()
    result = get_code(client, rp, challenge, **extra)
    response = exchange_code(client, rp, result["code"], challenge.verifier)
    assert response.status_code == 200, response.get_json()
    return response.get_json() | {"nonce": result["nonce"]}  # type: ignore[no-any-return]


def sign_in_fails(client: FlaskClient, email: str, password: str) -> bool:
    response = client.post("/signin", data={"email": email, "password": password, "csrf_token": csrf_token(client)})
    return response.status_code in (400, 429)
