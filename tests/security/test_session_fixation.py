"""Threat: session fixation and theft (OWASP ASVS V3).

Mitigation: the session id rotates on sign-in; the cookie is HttpOnly and SameSite (Secure outside
loopback: tests/security/test_clickjacking_and_headers.py); sessions end after the idle and the
absolute expiry, whatever the cookie says; the server keeps only a hash of the id. The CSRF token
rotates whenever the browser's identity changes (sign-in, sign-out), so a token an attacker planted
or read before the person signed in is worthless afterwards.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.login_sessions import COOKIE_NAME
from idp.models import Account, LoginSession
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE_NAME)
    return cookie.value if cookie else None


def _is_signed_in(client: FlaskClient, rp: RegisteredClient) -> bool:
    response = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce(), prompt="none"))
    return flows.query(response.headers["Location"]).get("error") not in {"login_required"}


def test_a_session_id_planted_before_sign_in_is_not_the_one_signed_in(client: FlaskClient, citizen: Account) -> None:
    client.set_cookie(COOKIE_NAME, "planted-by-the-attacker")
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    assert _session_cookie(client) not in {None, "planted-by-the-attacker"}


def test_signing_in_again_rotates_the_session_id(app: Flask, client: FlaskClient, citizen: Account,
                                                rp: RegisteredClient) -> None:
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    first = _session_cookie(client)
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    assert _session_cookie(client) != first
    stolen = app.test_client()  # a copy of the cookie taken before the second sign-in is dead
    stolen.set_cookie(COOKIE_NAME, first or "")
    assert not _is_signed_in(stolen, rp)


def test_the_session_cookie_is_httponly_and_samesite(client: FlaskClient, citizen: Account) -> None:
    response = flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{COOKIE_NAME}="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_the_database_holds_only_a_hash_of_the_session_id(client: FlaskClient, db_session: Session,
                                                          citizen: Account) -> None:
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    ids = db_session.scalars(select(LoginSession.id).where(LoginSession.account_id == citizen.id)).all()
    assert ids and _session_cookie(client) not in ids


def test_an_idle_session_ends(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                              signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())  # consent given, so only the session decides
    assert _is_signed_in(client, rp)
    db_session.execute(update(LoginSession).values(last_active_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=31)))
    db_session.commit()
    assert not _is_signed_in(client, rp)


def test_a_session_past_its_absolute_expiry_ends_even_when_active(client: FlaskClient, db_session: Session,
                                                                  rp: RegisteredClient, signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    db_session.execute(update(LoginSession).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
                                                   last_active_at=dt.datetime.now(dt.UTC)))
    db_session.commit()
    assert not _is_signed_in(client, rp)


def test_a_csrf_token_known_before_sign_in_is_refused_after_it(client: FlaskClient, citizen: Account,
                                                               rp: RegisteredClient) -> None:
    planted = flows.csrf_token(client)  # e.g. the attacker's own flow cookie, planted in the browser
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    forged = client.post("/signout", data={"csrf_token": planted})
    assert forged.status_code == 400 and _is_signed_in(client, rp)
    assert flows.csrf_token(client, "/signout") != planted


def test_signing_out_rotates_the_csrf_token(client: FlaskClient, citizen: Account) -> None:
    flows.sign_in(client, citizen.email, CITIZEN_PASSWORD)
    while_signed_in = flows.csrf_token(client, "/signout")
    client.post("/signout", data={"csrf_token": while_signed_in})
    assert flows.csrf_token(client) != while_signed_in
    refused = client.post("/signin", data={"email": citizen.email, "password": CITIZEN_PASSWORD,
                                           "csrf_token": while_signed_in})
    assert refused.status_code == 400
