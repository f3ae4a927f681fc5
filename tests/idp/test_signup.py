"""Sign-up with a one-time email code (sign-in.md "Accounts")."""

from __future__ import annotations

import re

from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from idp.mail import SmtpSender
from idp.models import Account, EmailChallenge, LoginSession, OutboxMessage
from idp.outbox import deliver_due, open_body
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import RegisteredClient
from tests.idp.test_outbox import Inbox
from tests.idp.test_outbox import _free_port as free_port

NEW_PASSWORD = "a much longer new passphrase"


def _post(client: FlaskClient, path: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, "/signup")})


def _code_sent_to(db_session: Session, email: str) -> str:
    message = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == email)
                                 .order_by(OutboxMessage.created_at.desc())).first()
    assert message is not None
    body = open_body(db_session, message)
    match = re.search(r"\b(\d{6})\b", body)
    assert match, body
    return match.group(1)


def _details(**overrides: str) -> dict[str, str]:
    return {"given_name": "Grace", "family_name": "Hopper", "day": "9", "month": "12", "year": "1906",
            "method": "password", "password": NEW_PASSWORD} | overrides


def test_sign_up_with_an_emailed_code_creates_a_signed_in_account(client: FlaskClient, db_session: Session) -> None:
    assert _post(client, "/signup", {"email": "Grace@Example.com"}).status_code == 302
    code = _code_sent_to(db_session, "grace@example.com")
    assert _post(client, "/signup/code", {"code": code}).headers["Location"].endswith("/signup/details")
    response = _post(client, "/signup/details", _details())
    assert response.status_code == 302
    account = db_session.scalars(select(Account).where(Account.email == "grace@example.com")).one()
    assert account.email_verified and account.birthdate is not None and account.password_hash
    assert db_session.scalars(select(LoginSession).where(LoginSession.account_id == account.id)).one().acr == "Cl"


def test_codes_are_stored_hashed_and_wrong_codes_are_limited(client: FlaskClient, db_session: Session) -> None:
    _post(client, "/signup", {"email": "limit@example.com"})
    code = _code_sent_to(db_session, "limit@example.com")
    assert code not in db_session.scalars(select(EmailChallenge.code_hash)).all()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = _post(client, "/signup/code", {"code": wrong})
        assert response.status_code == 400
    final = _post(client, "/signup/code", {"code": code})
    assert final.status_code == 400
    assert "too many times" in final.get_data(as_text=True)


def test_expired_code_is_refused(client: FlaskClient, db_session: Session) -> None:
    _post(client, "/signup", {"email": "late@example.com"})
    code = _code_sent_to(db_session, "late@example.com")
    db_session.execute(update(EmailChallenge).values(expires_at=utcnow()))
    db_session.commit()
    response = _post(client, "/signup/code", {"code": code})
    assert response.status_code == 400 and "expired" in response.get_data(as_text=True)


def test_an_existing_email_gets_the_same_page_but_no_code(client: FlaskClient, db_session: Session,
                                                          citizen: Account) -> None:
    new = _post(client, "/signup", {"email": "nobody-yet@example.com"})
    old = _post(client, "/signup", {"email": citizen.email})
    assert new.status_code == old.status_code == 302
    assert new.headers["Location"] == old.headers["Location"]
    message = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == citizen.email)).one()
    body = open_body(db_session, message)
    assert "already have" in body and not re.search(r"\b\d{6}\b", body)


def test_weak_passwords_are_refused_with_a_linked_error(client: FlaskClient, db_session: Session) -> None:
    _post(client, "/signup", {"email": "weak@example.com"})
    _post(client, "/signup/code", {"code": _code_sent_to(db_session, "weak@example.com")})
    for password, message in (("short", "at least 12"), ("password1234", "too common")):
        response = _post(client, "/signup/details", _details(password=password))
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and message in page
        assert 'href="#password"' in page


def test_details_cannot_be_reached_without_a_verified_code(client: FlaskClient, db_session: Session) -> None:
    _post(client, "/signup", {"email": "skip@example.com"})
    response = _post(client, "/signup/details", _details())
    assert response.status_code == 302 and response.headers["Location"].endswith("/signup/code")
    assert db_session.scalar(select(Account).where(Account.email == "skip@example.com")) is None


def test_passkey_only_sign_up_creates_an_account_without_a_password(client: FlaskClient,
                                                                    db_session: Session) -> None:
    _post(client, "/signup", {"email": "keyonly@example.com"})
    _post(client, "/signup/code", {"code": _code_sent_to(db_session, "keyonly@example.com")})
    response = _post(client, "/signup/details", _details(method="passkey", password=""))
    assert "passkey=1" in response.headers["Location"]
    account = db_session.scalars(select(Account).where(Account.email == "keyonly@example.com")).one()
    assert account.password_hash is None


def test_sign_up_from_an_agency_continues_to_the_agency(client: FlaskClient, db_session: Session,
                                                        rp: RegisteredClient) -> None:
    start = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce()))
    interaction = flows.query(start.headers["Location"])["interaction"]
    _post(client, "/signup", {"email": "via-agency@example.com", "interaction": interaction})
    _post(client, "/signup/code", {"code": _code_sent_to(db_session, "via-agency@example.com")})
    done = client.get(_post(client, "/signup/details", _details()).headers["Location"])
    next_url = re.search(r'id="continue" href="([^"]+)"', done.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    final = flows.follow_to_client(client, client.get(next_url))
    assert "code" in flows.query(final.headers["Location"])


def test_signing_in_needs_the_new_password(client: FlaskClient, citizen: Account) -> None:
    assert flows.sign_in(client, citizen.email, CITIZEN_PASSWORD).status_code == 302


def test_the_code_arrives_by_real_smtp_and_verifies(client: FlaskClient, db_session: Session,
                                                    test_sessions: sessionmaker[Session]) -> None:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        _post(client, "/signup", {"email": "smtp-user@example.com"})
        sender = SmtpSender(f"smtp://127.0.0.1:{controller.port}", "IdP <no-reply@example.gov>")
        assert deliver_due(test_sessions, {"email": sender}).sent == 1
    finally:
        controller.stop()
    [mail] = inbox.messages
    code = re.search(r"\b(\d{6})\b", mail.get_payload()).group(1)  # type: ignore[union-attr]
    assert _post(client, "/signup/code", {"code": code}).headers["Location"].endswith("/signup/details")
