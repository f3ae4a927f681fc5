"""Threat: logout CSRF (RP-Initiated Logout 1.0 §2, §6; security.md "logout CSRF").

Mitigation: ``/logout`` signs the person out without asking only when ``id_token_hint`` is an ID
token (untyped, for one of our clients; never an access or logout token) whose subject, as its
client sees it, is the person signed in in this browser; expired ones still count (§2). Anything
else is asked first (a POST carrying the CSRF token); a post-logout URI is used only when registered
for the hint's client.
"""

from __future__ import annotations

import time

from flask import Flask
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from idp.accounts import create_account
from idp.backchannel import logout_token
from idp.config import Settings
from idp.models import Account, Agency
from idp.services import Services
from tests.conftest import CITIZEN_PASSWORD, make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient

SIGNED_OUT = "https://rp.example/signed-out"


def _signed_in(client: FlaskClient, rp: RegisteredClient) -> bool:
    params = flows.authorize_params(rp, flows.pkce(), prompt="none")
    location = client.get("/authorize", query_string=params).headers["Location"]
    return flows.query(location).get("error") != "login_required"


def _logout(client: FlaskClient, hint: str, **extra: str) -> tuple[int, str, str | None]:
    response = client.get("/logout", query_string={"id_token_hint": hint, "post_logout_redirect_uri": SIGNED_OUT,
                                                   "state": "s1"} | extra)
    return response.status_code, response.get_data(as_text=True), response.headers.get("Location")


def _id_token_of_someone_else(app: Flask, rp: RegisteredClient, db_session: Session) -> str:
    attacker = create_account(db_session, email="attacker@example.com", given_name="Eve", family_name="Attacker",
                              password=CITIZEN_PASSWORD)
    db_session.commit()
    browser = app.test_client()
    flows.sign_in(browser, attacker.email, CITIZEN_PASSWORD)
    return str(flows.tokens_for(browser, rp)["id_token"])


def test_another_citizens_id_token_does_not_sign_the_victim_out_without_asking(
        app: Flask, client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session) -> None:
    hint = _id_token_of_someone_else(app, rp, db_session)
    status, page, location = _logout(client, hint)
    assert status == 200 and "Do you want to sign out?" in page and location is None
    assert _signed_in(client, rp)


def test_the_victims_own_access_token_is_not_an_id_token_hint(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    access_token = flows.tokens_for(client, rp)["access_token"]
    status, _page, location = _logout(client, access_token)
    assert status == 400 and location is None
    assert _signed_in(client, rp)


def test_a_logout_token_naming_the_victim_is_not_an_id_token_hint(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session,
        base_services: Services, settings: Settings) -> None:
    flows.get_code(client, rp, flows.pkce())
    token = logout_token(db_session, base_services.keyring, settings,
                         {"client_id": rp.client_id, "account_id": signed_in.id, "sid": None})
    assert token is not None
    status, _page, _location = _logout(client, token)
    assert status == 400
    assert _signed_in(client, rp)


def test_confirming_signs_out_and_returns_to_the_uri_registered_for_the_hints_client(
        app: Flask, client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session) -> None:
    hint = _id_token_of_someone_else(app, rp, db_session)
    _status, page, _location = _logout(client, hint)
    refused = client.post("/logout", data={"decision": "signout", "id_token_hint": hint,
                                           "post_logout_redirect_uri": SIGNED_OUT})
    assert refused.status_code == 400 and _signed_in(client, rp)  # no CSRF token: no sign-out
    token = flows.CSRF.search(page).group(1)  # type: ignore[union-attr]
    done = client.post("/logout", data={"decision": "signout", "csrf_token": token, "id_token_hint": hint,
                                        "post_logout_redirect_uri": SIGNED_OUT, "state": "s1"})
    assert done.status_code == 302 and done.headers["Location"] == f"{SIGNED_OUT}?state=s1"
    assert not _signed_in(client, rp)


def test_the_persons_own_expired_id_token_signs_out_without_asking(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session,
        base_services: Services, settings: Settings) -> None:
    flows.get_code(client, rp, flows.pkce())
    now = int(time.time())
    expired = base_services.keyring.sign_jwt(db_session, {
        "iss": settings.issuer, "sub": rp.model.subject_for(signed_in.id), "aud": rp.client_id,
        "iat": now - 7200, "exp": now - 3600, "auth_time": now - 7200})
    status, _page, location = _logout(client, expired, client_id=rp.client_id)
    assert status == 302 and location == f"{SIGNED_OUT}?state=s1"
    assert not _signed_in(client, rp)


def test_the_persons_id_token_from_another_agency_names_them_as_that_agency_sees_them(
        client: FlaskClient, rp: RegisteredClient, signed_in: Account, db_session: Session, other_agency: Agency,
        rp_key: ECKey) -> None:
    elsewhere = make_client(db_session, other_agency, key=rp_key, client_name="Elsewhere")
    hint = flows.tokens_for(client, elsewhere)["id_token"]
    assert elsewhere.model.subject_for(signed_in.id) != rp.model.subject_for(signed_in.id)  # pairwise
    status, _page, location = _logout(client, hint)
    assert status == 302 and location == f"{SIGNED_OUT}?state=s1"
    assert not _signed_in(client, rp)
