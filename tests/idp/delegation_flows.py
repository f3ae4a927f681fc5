"""Helpers for delegation tests: people, an active delegation, and a delegate's way through /authorize."""

from __future__ import annotations

import re
import secrets
from typing import Any

import jwt as pyjwt
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from consent import delegations as lifecycle
from consent.consents import record_decision
from consent.delegation_models import Delegation
from consent.delegations import Terms
from consent.ledger import Ledger
from idp.accounts import create_account
from idp.models import Account, OutboxMessage
from idp.outbox import open_body
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.flows import CSRF, ISSUER, RegisteredClient

CARER = Terms(type="carer", mode="act")
WHO = re.compile(r'name="who" type="radio" value="([^"]+)"')


def person(session: Session, given_name: str) -> Account:
    account = create_account(session, email=f"{given_name.lower()}-{secrets.token_hex(4)}@example.com",
                             given_name=given_name, family_name="Smith", password=CITIZEN_PASSWORD)
    session.commit()
    return account


def delegate(session: Session, ledger: Ledger, principal: Account, carer: Account,
             terms: Terms = CARER) -> Delegation:
    """An accepted invitation: ``carer`` may act for ``principal``."""
    _delegation, token = lifecycle.invite_delegate(session, principal.id, carer.email, terms, ledger=ledger)
    delegation = lifecycle.accept_invitation(session, token, carer.id, carer.email, ledger=ledger, effects=None)
    session.commit()
    return delegation


def consent(session: Session, ledger: Ledger, account: Account, rp: RegisteredClient, scopes: set[str]) -> None:
    record_decision(session, account.id, rp.model.agency_id, granted=scopes, denied=set(), ledger=ledger,
                    client_id=rp.client_id)
    session.commit()


def choose(client: FlaskClient, response: TestResponse, who: str | None) -> TestResponse:
    """Follow the provider's redirects, answering "Who are you using this service for?" with ``who``
    (a delegation id or "myself"; None: fail if asked) and allowing consent."""
    for _ in range(10):
        location = response.headers.get("Location", "")
        if response.status_code != 302 or not location.startswith(("/", ISSUER)):
            return response
        path = location.removeprefix(ISSUER)
        if path.startswith("/authorize/who/"):
            assert who is not None, "the chooser was shown"
            page = client.get(path).get_data(as_text=True)
            token = CSRF.search(page).group(1)  # type: ignore[union-attr]
            response = client.post(path, data={"who": who, "csrf_token": token})
        else:
            response = flows.follow_to_client(client, client.get(path)) if not path.startswith("/consent/") \
                else flows.follow_to_client(client, response)
    raise AssertionError("too many redirects")


def acting_tokens(client: FlaskClient, rp: RegisteredClient, who: str | None, **extra: str) -> dict[str, Any]:
    challenge = flows.pkce()
    params = flows.authorize_params(rp, challenge, **extra)
    response = choose(client, client.get("/authorize", query_string=params), who)
    assert response.status_code == 302 and response.headers["Location"].startswith(rp.redirect_uri), \
        response.get_data(as_text=True)
    code = flows.query(response.headers["Location"])["code"]
    exchanged = flows.exchange_code(client, rp, code, challenge.verifier)
    assert exchanged.status_code == 200, exchanged.get_json()
    return exchanged.get_json()  # type: ignore[no-any-return]


def claims(token: str) -> dict[str, Any]:
    return pyjwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def introspect(client: FlaskClient, rp: RegisteredClient, token: str) -> dict[str, Any]:
    return client.post("/introspect", **flows.authenticated(rp, {"token": token})).get_json()  # type: ignore[no-any-return]


def emailed_link(session: Session, to: str, pattern: re.Pattern[str]) -> str:
    """The path a link in the newest email to ``to`` points at (``pattern``'s first group)."""
    message = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == to)
                              .order_by(OutboxMessage.created_at.desc())).first()
    assert message is not None, f"no email to {to}"
    body = open_body(session, message)
    match = pattern.search(body)
    assert match, body
    return match.group(1)


def form_post(client: FlaskClient, path: str, data: dict[str, Any], page: str | None = None) -> TestResponse:
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, page or "/account/delegates")})
