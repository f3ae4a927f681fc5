"""Test helpers that act like idp/static/passkeys.js: fetch options, run the software
authenticator, post the credential with the CSRF header."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from idp.accounts import create_account
from idp.models import Account, LoginSession, Passkey
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.authenticator import SoftAuthenticator, unb64url


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


def register_then_sign_out(client: FlaskClient, citizen: Account, authenticator: SoftAuthenticator) -> Account:
    assert register(client, authenticator).status_code == 200
    sign_out(client)
    return citizen


def sign_out(client: FlaskClient) -> None:
    client.post("/signout", data={"csrf_token": flows.csrf_token(client)})


def browser_session(client: FlaskClient, db_session: Session) -> LoginSession | None:
    """The session the test browser's cookie names, read afresh."""
    cookie = client.get_cookie("idp_session")
    if cookie is None or not cookie.value:
        return None
    db_session.expire_all()
    return db_session.get(LoginSession, hashlib.sha256(cookie.value.encode()).hexdigest())


def passkey_count(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Passkey)) or 0


def error_of(response: TestResponse) -> str:
    """The ``error`` of a 4xx JSON answer, which must also carry a ``message``."""
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    body = response.get_json()
    assert body["message"]
    return str(body["error"])


def another_citizen(db_session: Session, label: str) -> Account:
    account = create_account(db_session, email=f"{label}-{secrets.token_hex(4)}@example.com", given_name="Grace",
                             family_name="Hopper", password=CITIZEN_PASSWORD)
    db_session.commit()
    return account


def credential_challenge(credential: dict[str, Any]) -> str:
    return str(json.loads(unb64url(credential["response"]["clientDataJSON"]))["challenge"])
