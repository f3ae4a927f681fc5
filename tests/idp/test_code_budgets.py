"""Budgets of emailed codes and links (security.md "code and link guessing"; idp/attempts.py): ten
checks per address an hour whatever the challenge or purpose, a cap on the emails sent to an address,
budgets per network, and a page saying how long to wait that is the same whether or not the address
has an account."""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from consent.delegation_models import Delegation
from consent.ledger import Ledger
from idp.email_codes import issue_code
from idp.models import Account, OutboxMessage, ThrottleCounter
from tests.idp import flows
from tests.idp.test_young_people import child_of, link_for, offer, offers, signed_in

GUESSES_PER_HOUR = 10  # security.md
EMAILS_PER_HOUR = 5  # README: IDP_EMAILS_PER_ADDRESS_PER_HOUR, by default
LINK_GUESSES_PER_NETWORK = 50
WRONG = "000000"  # one chance in a million of being right, per challenge


def post(client: FlaskClient, path: str, data: dict[str, Any]) -> TestResponse:
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, "/recover")})


def sent_to(db_session: Session, email: str) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.recipient == email)
    return db_session.scalar(query) or 0


def refusal(response: TestResponse) -> str:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert "Too many attempts" in page
    return re.sub(r"\s+", " ", page.split("<h1", 1)[1].split("</main>", 1)[0])


def test_the_eleventh_code_in_an_hour_is_refused_even_right_whatever_the_challenge(
        client: FlaskClient, db_session: Session, citizen: Account) -> None:
    guesses = []
    for start, check, times in (("/recover", "/recover/code", 4), ("/recover", "/recover/code", 4),
                                ("/signup", "/signup/code", 2)):  # three challenges, two purposes
        assert post(client, start, {"email": citizen.email}).status_code == 302
        guesses += [post(client, check, {"code": WRONG}).status_code for _ in range(times)]
    assert guesses == [400] * GUESSES_PER_HOUR
    challenge, code = issue_code(db_session, purpose="recovery", email=citizen.email, account_id=citizen.id)
    db_session.commit()
    with client.session_transaction() as flow:
        flow["recovery"] = challenge.id
    page = refusal(post(client, "/recover/code", {"code": code}))
    assert "Wait 60 minutes and try again" in page
    db_session.refresh(challenge)
    assert challenge.attempts == 0 and challenge.verified_at is None  # never compared


def test_a_right_code_within_the_budget_works_and_costs_the_network_nothing(
        client: FlaskClient, db_session: Session, citizen: Account) -> None:
    assert post(client, "/recover", {"email": citizen.email}).status_code == 302
    assert post(client, "/recover/code", {"code": WRONG}).status_code == 400
    challenge, code = issue_code(db_session, purpose="recovery", email=citizen.email, account_id=citizen.id)
    db_session.commit()
    with client.session_transaction() as flow:
        flow["recovery"] = challenge.id
    response = post(client, "/recover/code", {"code": code})
    assert response.status_code == 302 and response.headers["Location"].endswith("/recover/password")
    network = db_session.get(ThrottleCounter, "guessnet:127.0.0.0/24")  # the test client's network
    assert network is not None and network.failures == 1  # the wrong code only


def test_the_sixth_email_to_an_address_in_an_hour_is_refused_saying_how_long_to_wait(
        client: FlaskClient, db_session: Session, citizen: Account) -> None:
    statuses = [post(client, "/recover" if n % 2 else "/signup", {"email": citizen.email}).status_code
                for n in range(EMAILS_PER_HOUR)]
    assert statuses == [302] * EMAILS_PER_HOUR
    page = refusal(post(client, "/recover", {"email": citizen.email}))
    assert "Wait 60 minutes and try again" in page
    assert sent_to(db_session, citizen.email) == EMAILS_PER_HOUR


def test_the_refusal_does_not_tell_whether_the_address_has_an_account(
        client: FlaskClient, db_session: Session, citizen: Account) -> None:
    pages = []
    for email in (citizen.email, f"nobody-{secrets.token_hex(4)}@example.com"):
        for _ in range(EMAILS_PER_HOUR):
            assert post(client, "/recover", {"email": email}).status_code == 302
        pages.append(refusal(post(client, "/recover", {"email": email})))
    assert pages[0] == pages[1]


def test_invitations_share_the_address_budget_and_a_refused_one_saves_nothing(
        app: Any, db_session: Session, mary: Account) -> None:
    client, friend = signed_in(app, mary), f"friend-{secrets.token_hex(4)}@example.com"
    for _ in range(EMAILS_PER_HOUR - 1):
        assert post(client, "/signup", {"email": friend}).status_code == 302
    form = {"email": friend, "type": "carer", "mode": "act", "services": "all", "details": "all"}
    assert post(client, "/account/delegates/invite", form).status_code == 302
    invited = db_session.scalar(select(func.count()).select_from(Delegation))
    refusal(post(client, "/account/delegates/invite", form))
    assert db_session.scalar(select(func.count()).select_from(Delegation)) == invited
    assert sent_to(db_session, friend) == EMAILS_PER_HOUR


def test_handover_offers_share_the_address_budget(app: Any, db_session: Session, ledger: Ledger,
                                                  mary: Account) -> None:
    delegation, address = child_of(db_session, ledger, mary, age=14), f"kit-{secrets.token_hex(4)}@example.com"
    parent = signed_in(app, mary)
    for _ in range(EMAILS_PER_HOUR):
        assert post(parent, "/recover", {"email": address}).status_code == 302
    before = offers(db_session)
    refusal(offer(parent, delegation, address))
    assert offers(db_session) == before


def test_wrong_handover_links_count_against_the_address_they_were_sent_to(
        app: Any, db_session: Session, ledger: Ledger, mary: Account) -> None:
    delegation, address = child_of(db_session, ledger, mary, age=14), f"kit-{secrets.token_hex(4)}@example.com"
    assert offer(signed_in(app, mary), delegation, address).status_code == 302
    link, young = link_for(db_session, address), app.test_client()
    for n in range(GUESSES_PER_HOUR):
        young.environ_base["REMOTE_ADDR"] = f"192.0.2.{n}"  # many networks: only the address's budget binds
        assert young.get(link[:-4] + "abcd").status_code == 410
    refusal(young.get(link))


def test_bad_links_from_one_network_are_paused(client: FlaskClient) -> None:
    client.environ_base["REMOTE_ADDR"] = "203.0.113.50"
    statuses = {client.get(f"/delegation/invitation/{secrets.token_urlsafe(32)}").status_code
                for _ in range(LINK_GUESSES_PER_NETWORK)}
    assert statuses == {410}
    refusal(client.get(f"/delegation/invitation/{secrets.token_urlsafe(32)}"))
    client.environ_base["REMOTE_ADDR"] = "198.51.100.50"
    assert client.get(f"/delegation/invitation/{secrets.token_urlsafe(32)}").status_code == 410
