"""Recovery by email code, password change, the sessions page, and deleting an account."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Account, LoginSession, OutboxMessage
from idp.outbox import open_body
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import RegisteredClient

NEW_PASSWORD = "an entirely new passphrase"


def _post(client: FlaskClient, path: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, "/recover")})


def _last_email(db_session: Session, to: str) -> OutboxMessage:
    message = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == to)
                                 .order_by(OutboxMessage.created_at.desc())).first()
    assert message is not None
    return message


def test_recovery_sets_a_new_password_and_tells_the_owner(client: FlaskClient, db_session: Session,
                                                          citizen: Account) -> None:
    _post(client, "/recover", {"email": citizen.email})
    body = open_body(db_session, _last_email(db_session, citizen.email))
    code = re.search(r"\b(\d{6})\b", body).group(1)  # type: ignore[union-attr]
    _post(client, "/recover/code", {"code": code})
    assert _post(client, "/recover/password", {"password": NEW_PASSWORD}).status_code == 302
    assert "password was changed" in _last_email(db_session, citizen.email).subject  # type: ignore[operator]
    client.post("/signout", data={"csrf_token": flows.csrf_token(client, "/signout")})
    assert flows.sign_in(client, citizen.email, NEW_PASSWORD).status_code == 302


def test_recovery_for_an_unknown_email_looks_the_same_and_never_succeeds(client: FlaskClient,
                                                                         db_session: Session) -> None:
    response = _post(client, "/recover", {"email": "ghost@example.com"})
    assert response.status_code == 302
    sent = select(OutboxMessage).where(OutboxMessage.recipient == "ghost@example.com")
    assert db_session.scalars(sent).first() is None
    assert _post(client, "/recover/code", {"code": "123456"}).status_code == 400


def test_changing_the_password_needs_the_current_one(client: FlaskClient, db_session: Session,
                                                     signed_in: Account) -> None:
    token = flows.csrf_token(client, "/account/password")
    wrong = client.post("/account/password", data={"current_password": "not it at all", "password": NEW_PASSWORD,
                                                    "csrf_token": token})
    assert wrong.status_code == 400
    ok = client.post("/account/password", data={"current_password": CITIZEN_PASSWORD, "password": NEW_PASSWORD,
                                                 "csrf_token": token})
    assert ok.status_code == 302
    assert "password was changed" in _last_email(db_session, signed_in.email).subject  # type: ignore[operator]


def test_sessions_page_lists_services_and_signs_out_one_session(client: FlaskClient, db_session: Session,
                                                                rp: RegisteredClient, signed_in: Account) -> None:
    flows.tokens_for(client, rp)  # the service received tokens in this session
    page = client.get("/account/sessions").get_data(as_text=True)
    assert "Test Service" in page and "(this device)" in page
    sid = re.search(r'/account/sessions/([^/]+)/end', page).group(1)  # type: ignore[union-attr]
    client.post(f"/account/sessions/{sid}/end", data={"csrf_token": flows.csrf_token(client, "/signout")})
    login = db_session.scalars(select(LoginSession).where(LoginSession.sid == sid)).one()
    assert login.ended_at is not None
    assert client.get("/account/sessions").status_code == 302  # signed out: back to sign-in


def test_account_pages_need_a_session(client: FlaskClient) -> None:
    for path in ("/account", "/account/password", "/account/sessions", "/account/delete"):
        assert client.get(path).headers["Location"].startswith("/signin")


def test_deleting_the_account_revokes_tokens_and_erases_personal_data(client: FlaskClient, db_session: Session,
                                                                       rp: RegisteredClient,
                                                                       signed_in: Account) -> None:
    body = flows.tokens_for(client, rp)
    token = flows.csrf_token(client, "/account/delete")
    assert client.post("/account/delete", data={"csrf_token": token}).status_code == 400  # not confirmed
    client.post("/account/delete", data={"csrf_token": token, "confirm": "delete"})
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 401
    account = db_session.get(Account, signed_in.id)
    db_session.refresh(account)
    assert account is not None and account.status == "deleted" and "Ada" not in account.given_name
    assert account.password_hash is None
    assert flows.sign_in_fails(client, signed_in.email, CITIZEN_PASSWORD)


def test_profile_can_be_edited(client: FlaskClient, db_session: Session, signed_in: Account) -> None:
    token = flows.csrf_token(client, "/account")
    response = client.post("/account", data={"given_name": "Augusta", "family_name": "King", "csrf_token": token})
    assert "Your details have been saved" in response.get_data(as_text=True)
    db_session.refresh(signed_in)
    assert signed_in.given_name == "Augusta"
    bad = client.post("/account", data={"given_name": "", "family_name": "King", "csrf_token": token})
    assert bad.status_code == 400 and 'href="#given_name"' in bad.get_data(as_text=True)
