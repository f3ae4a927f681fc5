"""Threat: credential stuffing and password guessing (sign-in.md "Abuse resistance").

Mitigation: failed sign-ins are throttled per account and per client network; repeated failures
lock the account for a while and email its owner; the answer never reveals whether an email is
registered.
"""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.models import Account, OutboxMessage, ThrottleCounter
from idp.throttle import FREE_FAILURES, LOCK_AT
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows

WRONG = "not the password at all"


def _attempt(client: FlaskClient, email: str, password: str, network: str = "198.51.100.7") -> tuple[int, str]:
    data = {"email": email, "password": password, "csrf_token": flows.csrf_token(client)}
    response = client.post("/signin", data=data, environ_base={"REMOTE_ADDR": network})
    return response.status_code, response.get_data(as_text=True)


def test_guessing_one_accounts_password_is_paused_even_for_the_right_password(client: FlaskClient,
                                                                              citizen: Account) -> None:
    for _ in range(FREE_FAILURES["email"]):
        assert _attempt(client, citizen.email, WRONG)[0] == 400
    assert _attempt(client, citizen.email, CITIZEN_PASSWORD)[0] == 429


def test_one_network_trying_many_accounts_is_paused(client: FlaskClient, citizen: Account) -> None:
    statuses = [_attempt(client, f"victim-{n}@example.com", WRONG)[0] for n in range(FREE_FAILURES["ip"] + 1)]
    assert statuses[-1] == 429
    assert _attempt(client, citizen.email, CITIZEN_PASSWORD)[0] == 429
    assert _attempt(client, citizen.email, CITIZEN_PASSWORD, network="203.0.113.9")[0] == 302


def test_repeated_failures_lock_the_account_and_email_its_owner(client: FlaskClient, db_session: Session,
                                                                citizen: Account) -> None:
    for _ in range(LOCK_AT):
        db_session.execute(update(ThrottleCounter).values(blocked_until=None))  # skip each pause, keep the count
        db_session.commit()
        _attempt(client, citizen.email, WRONG)
    mails = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == citizen.email)).all()
    assert any("paused" in (mail.subject or "") for mail in mails)


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(client: FlaskClient, citizen: Account) -> None:
    known = [_attempt(client, citizen.email, WRONG, network="192.0.2.1") for _ in range(6)]
    unknown = [_attempt(client, "nobody-here@example.com", WRONG, network="192.0.2.2") for _ in range(6)]
    assert [status for status, _ in known] == [status for status, _ in unknown]
    strip = lambda page: page.replace(citizen.email, "EMAIL").replace("nobody-here@example.com", "EMAIL")  # noqa: E731
    assert strip(known[0][1]).split('name="csrf_token"')[0] == strip(unknown[0][1]).split('name="csrf_token"')[0]
