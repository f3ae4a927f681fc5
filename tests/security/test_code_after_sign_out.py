"""Threat: an authorization code outliving the sign-in it stands for (RFC 6749 §4.1.2, OIDC
sessions): a code taken from a shared computer's history is redeemed after the person signed out.

Mitigation: a code is redeemed only while the login session it was issued in has not ended; every
way of signing out (``/signout``, RP-initiated ``/logout``, ending a session from another device,
signing in as someone else) ends that session.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Account, LoginSession
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _code_then(client: FlaskClient, rp: RegisteredClient) -> tuple[str, str]:
    challenge = flows.pkce()
    return flows.get_code(client, rp, challenge)["code"], challenge.verifier


def _refused(client: FlaskClient, rp: RegisteredClient, code: str, verifier: str) -> bool:
    response = flows.exchange_code(client, rp, code, verifier)
    return response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_a_code_issued_before_signing_out_is_refused(client: FlaskClient, rp: RegisteredClient,
                                                     signed_in: Account) -> None:
    code, verifier = _code_then(client, rp)
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    assert _refused(client, rp, code, verifier)


def test_a_code_issued_before_an_rp_initiated_logout_is_refused(client: FlaskClient, rp: RegisteredClient,
                                                                signed_in: Account) -> None:
    id_token = flows.tokens_for(client, rp)["id_token"]
    code, verifier = _code_then(client, rp)
    assert client.get("/logout", query_string={"id_token_hint": id_token}).status_code == 200
    assert _refused(client, rp, code, verifier)


def test_a_code_of_a_session_ended_from_another_device_is_refused(
        app: Flask, client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session) -> None:
    code, verifier = _code_then(client, rp)
    other_device = app.test_client()
    flows.sign_in(other_device, signed_in.email, CITIZEN_PASSWORD)
    sids = db_session.scalars(select(LoginSession.sid).where(LoginSession.account_id == signed_in.id,
                                                             LoginSession.ended_at.is_(None))
                              .order_by(LoginSession.created_at)).all()
    first_sid = sids[0]
    token = flows.csrf_token(other_device, "/account/sessions")
    other_device.post(f"/account/sessions/{first_sid}/end", data={"csrf_token": token})
    assert _refused(other_device, rp, code, verifier)


def test_a_code_of_a_live_session_is_still_redeemed(client: FlaskClient, rp: RegisteredClient,
                                                    signed_in: Account) -> None:
    code, verifier = _code_then(client, rp)
    assert flows.exchange_code(client, rp, code, verifier).status_code == 200
