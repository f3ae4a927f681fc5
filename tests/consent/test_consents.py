"""Consent per agency: asked once, remembered with granted and denied scopes, asked again on
new scopes or prompt=consent."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from consent.consents import (
    USE_RECORDED_EVERY,
    consented_scopes,
    find_consent,
    record_decision,
    record_use,
    undecided_scopes,
)
from consent.ledger import Ledger
from idp.models import Account, Agency
from tests.conftest import make_client
from tests.idp import flows
from tests.idp.flows import RegisteredClient


def _first_stop(client: FlaskClient, rp: RegisteredClient, **extra: str) -> str:
    response = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce(), **extra))
    return response.headers["Location"]


def test_consent_page_names_the_agency_and_the_claims(client: FlaskClient, rp: RegisteredClient,
                                                      signed_in: Account) -> None:
    location = _first_stop(client, rp)
    assert location.startswith("/consent/")
    page = client.get(location).get_data(as_text=True)
    assert "Test Agency" in page
    assert "your email address" in page and "your name, date of birth" in page


def test_consent_is_remembered_for_the_agency(client: FlaskClient, db_session: Session, rp: RegisteredClient,
                                              agency: Agency, signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    assert "code=" in _first_stop(client, rp)
    sibling = make_client(db_session, agency, method="client_secret_basic")
    assert "code=" in _first_stop(client, sibling)  # same agency, same consent


def test_new_scopes_ask_again(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce(), scope="openid email")
    assert _first_stop(client, rp, scope="openid email phone").startswith("/consent/")


def test_denied_scope_is_remembered_and_not_asked_again(client: FlaskClient, db_session: Session,
                                                        rp: RegisteredClient, signed_in: Account) -> None:
    challenge = flows.pkce()
    params = flows.authorize_params(rp, challenge, scope="openid email phone")
    flows.follow_to_client(client, client.get("/authorize", query_string=params), scopes=["email"])
    consent = find_consent(db_session, signed_in.id, rp.model.agency_id)
    assert consent is not None and consent.granted == {"email"} and consent.denied == {"phone"}
    assert "code=" in _first_stop(client, rp, scope="openid email phone")


def test_prompt_consent_always_shows_the_page(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    flows.get_code(client, rp, flows.pkce())
    assert _first_stop(client, rp, prompt="consent").startswith("/consent/")
    result = flows.get_code(client, rp, flows.pkce(), prompt="consent")
    assert result["code"]


def test_decision_must_be_explicit(client: FlaskClient, rp: RegisteredClient, signed_in: Account) -> None:
    location = _first_stop(client, rp)
    token = flows.CSRF.search(client.get(location).get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    response = client.post(location, data={"decision": "yes please", "csrf_token": token})
    assert response.status_code == 400
    assert _first_stop(client, rp).startswith("/consent/")


def test_record_decision_merges_grants_and_denials(db_session: Session, agency: Agency, citizen: Account,
                                                   ledger: Ledger) -> None:
    record_decision(db_session, citizen.id, agency.id, granted={"email"}, denied={"phone"}, ledger=ledger,
                    client_id="c")
    record_decision(db_session, citizen.id, agency.id, granted={"phone"}, denied=set(), ledger=ledger, client_id="c")
    consent = find_consent(db_session, citizen.id, agency.id)
    assert consent is not None and consent.granted == {"email", "phone"} and consent.denied == set()
    assert undecided_scopes(consent, ["openid", "email", "profile"]) == {"profile"}
    assert consented_scopes(db_session, citizen.id, agency.id, ["openid", "email", "address"]) == {"openid", "email"}


def test_last_used_is_written_at_most_once_a_minute(db_session: Session, agency: Agency, citizen: Account,
                                                    ledger: Ledger) -> None:
    consent = record_decision(db_session, citizen.id, agency.id, granted={"email"}, denied=set(), ledger=ledger,
                              client_id="c")
    record_use(db_session, citizen.id, agency.id)
    db_session.refresh(consent)
    first = consent.last_used_at
    assert first is not None
    record_use(db_session, citizen.id, agency.id)  # within the minute: no write (so no row lock)
    db_session.refresh(consent)
    assert consent.last_used_at == first
    consent.last_used_at = first - USE_RECORDED_EVERY
    db_session.flush()
    record_use(db_session, citizen.id, agency.id)
    db_session.refresh(consent)
    assert consent.last_used_at is not None and consent.last_used_at > first
