"""Secrets and data (security.md): no secret, token, password or personal data in the logs, over
every flow: sign-up, sign-in (right and wrong), authorize, code exchange, refresh, userinfo,
introspection, revocation, registration, a replayed code and sign-out, at DEBUG.
"""

from __future__ import annotations

import logging
import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.logs import JsonFormatter
from idp.models import Account, OutboxMessage
from idp.outbox import open_body
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _every_flow(client: FlaskClient, db_session: Session, rp: RegisteredClient, secret_rp: RegisteredClient,
                citizen: Account, agency_token: str) -> dict[str, str]:
    secrets: dict[str, str] = {"password": CITIZEN_PASSWORD, "email": citizen.email,
                               "client secret": secret_rp.secret or "", "initial access token": agency_token}
    newcomer = "newcomer-logs@example.com"
    client.post("/signup", data={"email": newcomer, "csrf_token": flows.csrf_token(client, "/signup")})
    sent = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == newcomer)).first()
    body = open_body(db_session, sent) if sent else ""
    secrets |= {"new email": newcomer, "one-time code": re.search(r"\b(\d{6})\b", body).group(1)}  # type: ignore[union-attr]
    client.post("/signin", data={"email": citizen.email, "password": "wrong " + CITIZEN_PASSWORD,
                                 "csrf_token": flows.csrf_token(client)})
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    challenge = flows.pkce()
    result = flows.get_code(client, secret_rp, challenge, scope="openid email offline_access")
    tokens = flows.exchange_code(client, secret_rp, result["code"], challenge.verifier).get_json()
    assert "access_token" in tokens, tokens
    refreshed = flows.refresh(client, secret_rp, tokens["refresh_token"]).get_json()
    client.get("/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    client.post("/introspect", **flows.authenticated(secret_rp, {"token": refreshed["access_token"]}))
    client.post("/revoke", **flows.authenticated(secret_rp, {"token": refreshed["refresh_token"]}))
    flows.exchange_code(client, secret_rp, result["code"], challenge.verifier)  # replay: an error path
    registered = client.post("/register", headers={"Authorization": f"Bearer {agency_token}"}, json={
        "client_name": "Logs", "redirect_uris": ["https://rp.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic"}).get_json()
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    return secrets | {
        "code": result["code"], "state": result["state"], "nonce": result["nonce"], "verifier": challenge.verifier,
        "access token": tokens["access_token"], "id token": tokens["id_token"],
        "refresh token": tokens["refresh_token"], "rotated refresh token": refreshed["refresh_token"],
        "registration access token": registered["registration_access_token"],
        "registered client secret": registered["client_secret"],
    }


def test_no_flow_logs_a_secret_token_password_or_email(client: FlaskClient, db_session: Session,
                                                       rp: RegisteredClient, secret_rp: RegisteredClient,
                                                       citizen: Account, agency_token: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = _every_flow(client, db_session, rp, secret_rp, citizen, agency_token)
    output = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert output.count('"logger":"idp.access"') >= 15
    leaked = [name for name, value in secrets.items() if value and value in output]
    assert not leaked, leaked
