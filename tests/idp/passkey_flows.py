"""Test helpers that act like idp/static/passkeys.js: fetch options, run the software
authenticator, post the credential with the CSRF header."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.idp import flows
from tests.idp.authenticator import SoftAuthenticator


def post_json(client: FlaskClient, path: str, body: dict[str, Any], token: str | None = None) -> TestResponse:
    token = flows.csrf_token(client) if token is None else token
    return client.post(path, json=body, headers={"X-CSRF-Token": token})


def options(client: FlaskClient, kind: str, token: str) -> dict[str, Any]:
    response = post_json(client, f"/passkeys/{kind}/options", {}, token)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["options"]  # type: ignore[no-any-return]


def register(client: FlaskClient, authenticator: SoftAuthenticator, name: str = "My phone",
             **create: Any) -> TestResponse:
    token = flows.csrf_token(client)
    credential = authenticator.create(options(client, "register", token), **create)
    return post_json(client, "/passkeys/register/verify", {"credential": credential, "name": name}, token)


def assertion(client: FlaskClient, authenticator: SoftAuthenticator, kind: str, **get: Any) -> tuple[str, dict]:
    """Start a sign-in or confirm ceremony; the CSRF token and the credential to post."""
    token = flows.csrf_token(client)
    return token, authenticator.get(options(client, kind, token), **get)


def sign_in(client: FlaskClient, authenticator: SoftAuthenticator, interaction: str | None = None,
            **get: Any) -> TestResponse:
    token, credential = assertion(client, authenticator, "signin", **get)
    body = {"credential": credential} | ({"interaction": interaction} if interaction else {})
    return post_json(client, "/passkeys/signin/verify", body, token)


def confirm(client: FlaskClient, authenticator: SoftAuthenticator, interaction: str | None = None,
            **get: Any) -> TestResponse:
    token, credential = assertion(client, authenticator, "confirm", **get)
    body = {"credential": credential} | ({"interaction": interaction} if interaction else {})
    return post_json(client, "/passkeys/confirm/verify", body, token)
