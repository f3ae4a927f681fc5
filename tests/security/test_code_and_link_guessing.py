"""Threat: taking over an account by guessing an emailed code (or link), and flooding an inbox
(security.md "code and link guessing").

Mitigation: every check of an emailed code or link is reserved against the address (10 an hour,
across every challenge and purpose) and the network before it runs; every email with a code or a
link is reserved against the address (``IDP_EMAILS_PER_ADDRESS_PER_HOUR``) and the network before
it is queued (idp/attempts.py). A refusal is a 429 page saying how long to wait, the same for an
address with or without an account.
"""

from __future__ import annotations

import secrets

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from idp.email_codes import issue_code
from idp.models import Account, OutboxMessage
from tests.idp import flows

GUESSES_PER_HOUR, EMAILS_PER_HOUR, LINK_GUESSES_PER_NETWORK = 10, 5, 50


def post(client: FlaskClient, path: str, data: dict[str, str]) -> TestResponse:
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, "/recover")})


def victims_challenge(client: FlaskClient, db_session: Session, victim: Account) -> str:
    """A new recovery challenge for the victim in the attacker's browser; returns its code (which
    the attacker does not know: the tests use it to show even a right guess is refused)."""
    challenge, code = issue_code(db_session, purpose="recovery", email=victim.email, account_id=victim.id)
    db_session.commit()
    with client.session_transaction() as flow:
        flow["recovery"] = challenge.id
    return code


def test_a_stranger_starting_challenge_after_challenge_gets_ten_guesses_an_hour(
        client: FlaskClient, db_session: Session, citizen: Account) -> None:
    answers = []
    for _ in range(GUESSES_PER_HOUR // 2):  # fresh challenges, two guesses each
        code = victims_challenge(client, db_session, citizen)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        answers += [post(client, "/recover/code", {"code": wrong}).status_code for _ in range(2)]
    assert answers == [400] * GUESSES_PER_HOUR
    right = victims_challenge(client, db_session, citizen)
    refused = post(client, "/recover/code", {"code": right})
    assert refused.status_code == 429 and "Wait 60 minutes" in refused.get_data(as_text=True)


def test_a_stranger_cannot_flood_an_inbox_and_learns_nothing_about_accounts(
        client: FlaskClient, db_session: Session, citizen: Account) -> None:
    stranger = f"not-registered-{secrets.token_hex(4)}@example.com"
    for email in (citizen.email, stranger):
        answers = [post(client, "/recover", {"email": email}).status_code for _ in range(EMAILS_PER_HOUR + 3)]
        assert answers == [302] * EMAILS_PER_HOUR + [429] * 3
    count = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.recipient == citizen.email)
    assert db_session.scalar(count) == EMAILS_PER_HOUR


def test_one_network_trying_links_is_paused(client: FlaskClient) -> None:
    client.environ_base["REMOTE_ADDR"] = "203.0.113.77"
    answers = [client.get(f"/delegation/invitation/{secrets.token_urlsafe(32)}").status_code
               for _ in range(LINK_GUESSES_PER_NETWORK + 1)]
    assert answers == [410] * LINK_GUESSES_PER_NETWORK + [429]
