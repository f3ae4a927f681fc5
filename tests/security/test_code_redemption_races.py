"""Threat: redeeming one intercepted code many times at once (RFC 6749 §4.1.2, RFC 7636 §4.6).

Mitigation: each redemption reserves an attempt with one conditional UPDATE before anything is
checked, and only a redemption that passes every check consumes the code. So, however many
requests race: exactly one redemption wins, and no more than MAX_REDEMPTION_ATTEMPTS verifiers are
ever checked against a code. Real concurrent requests, on PostgreSQL (SQLite serialises writers).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from sqlalchemy import delete

from idp.accounts import create_account
from idp.app import build_services, create_app
from idp.config import Settings
from idp.models import Account, Agency
from idp.oauth.grants import MAX_REDEMPTION_ATTEMPTS
from idp.registry import create_agency
from idp.services import Services
from tests.concurrently import at_once
from tests.conftest import CITIZEN_PASSWORD, make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient

pytestmark = pytest.mark.skipif(
    not os.environ.get("IDP_TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="concurrent redemptions need PostgreSQL (IDP_TEST_DATABASE_URL); on SQLite BEGIN IMMEDIATE serialises them",
)

RACERS = 12
CHALLENGE_FAILED = "Code challenge failed."  # Authlib's description: the verifier was checked, and was wrong


@pytest.fixture
def committed(settings: Settings, base_services: Services) -> Iterator[tuple[Flask, RegisteredClient, Account]]:
    """The app on its own engine (the suite's keys, made by base_services), with a public client and a
    citizen that are really committed."""
    services: Services = build_services(settings)
    with services.sessions() as session:
        agency, _token = create_agency(session, f"Race Agency {secrets.token_hex(4)}")
        rp = make_client(session, agency, method="none", redirect_uris=["http://127.0.0.1:8765/cb"])
        citizen = create_account(session, email=f"race-{secrets.token_hex(4)}@example.com", given_name="Ada",
                                 family_name="Lovelace", password=CITIZEN_PASSWORD)
        session.commit()
    try:
        yield create_app(settings, services=services), rp, citizen
    finally:
        with services.sessions.begin() as session:
            session.execute(delete(Account).where(Account.id == citizen.id))
            session.execute(delete(Agency).where(Agency.id == agency.id))
        services.engine.dispose()


def _code(app: Flask, rp: RegisteredClient, citizen: Account) -> tuple[str, flows.Pkce]:
    browser = app.test_client()
    flows.sign_in(browser, citizen.email, CITIZEN_PASSWORD)
    challenge = flows.pkce()
    return flows.get_code(browser, rp, challenge)["code"], challenge


def _redeem(app: Flask, rp: RegisteredClient, code: str, verifier: str) -> Callable[[], tuple[int, dict[str, str]]]:
    def call() -> tuple[int, dict[str, str]]:
        response = flows.exchange_code(app.test_client(), rp, code, verifier)
        return response.status_code, response.get_json()
    return call


def test_racing_redemptions_with_the_right_verifier_have_exactly_one_winner(committed: tuple) -> None:
    app, rp, citizen = committed
    code, challenge = _code(app, rp, citizen)
    results = at_once([_redeem(app, rp, code, challenge.verifier) for _ in range(RACERS)])
    winners = [body for status, body in results if status == 200]
    assert len(winners) == 1, results
    assert {body["error"] for status, body in results if status != 200} == {"invalid_grant"}
    # RFC 6749 §4.1.2: the code was used more than once, so what it issued is revoked.
    bearer = {"Authorization": f"Bearer {winners[0]['access_token']}"}
    assert app.test_client().get("/userinfo", headers=bearer).status_code == 401


def test_racing_wrong_verifiers_get_no_more_checks_than_the_budget(committed: tuple) -> None:
    app, rp, citizen = committed
    code, challenge = _code(app, rp, citizen)
    results = at_once([_redeem(app, rp, code, flows.pkce().verifier) for _ in range(RACERS)])
    assert all(status == 400 and body["error"] == "invalid_grant" for status, body in results), results
    checked = [body for _status, body in results if body.get("error_description") == CHALLENGE_FAILED]
    assert len(checked) == MAX_REDEMPTION_ATTEMPTS, results
    status, body = _redeem(app, rp, code, challenge.verifier)()
    assert status == 400 and body["error"] == "invalid_grant"  # the budget is spent: the code is burned


def test_a_wrong_verifier_racing_the_right_one_does_not_cancel_the_sign_in(committed: tuple) -> None:
    app, rp, citizen = committed
    code, challenge = _code(app, rp, citizen)
    wrong = [_redeem(app, rp, code, flows.pkce().verifier) for _ in range(MAX_REDEMPTION_ATTEMPTS - 1)]
    results = at_once([*wrong, _redeem(app, rp, code, challenge.verifier)])
    assert results[-1][0] == 200, results
