"""Acting on behalf through OpenID Connect (delegation.md "Act", "What agencies receive", "Rules")."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.consents import record_decision
from consent.delegations import Terms
from consent.ledger import Ledger
from consent.models import LedgerEntry
from consent.pseudonyms import delegation_reference
from idp.delegation_effects import ServiceEffects
from idp.models import Account, Agency, OutboxMessage, TokenFamily
from idp.outbox import open_body
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD, make_client
from tests.idp import flows
from tests.idp.delegation_flows import acting_tokens, claims, consent, delegate, introspect, person
from tests.idp.flows import RegisteredClient


@pytest.fixture
def bcl_rp(db_session: Session, agency: Agency, rp_key: object) -> RegisteredClient:
    return make_client(db_session, agency, key=rp_key, client_name="Benefits",  # type: ignore[arg-type]
                       backchannel_logout_uri="https://rp.example/bcl")


def sign_in(client: FlaskClient, account: Account) -> None:
    flows.sign_in(client, account.email, CITIZEN_PASSWORD)


def test_choosing_a_principal_issues_tokens_for_them_naming_the_carer(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        bcl_rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    consent(db_session, ledger, mary, bcl_rp, {"profile"})
    sign_in(client, carol)
    body = acting_tokens(client, bcl_rp, delegation.id, scope="openid profile email offline_access")
    model = bcl_rp.model
    expected = {"act": {"sub": model.subject_for(carol.id)},
                "delegation": {"id": delegation_reference(db_session, mary.id, delegation.id, model.agency_id),
                               "type": "carer", "mode": "act"}}
    id_token, access = claims(body["id_token"]), claims(body["access_token"])
    for token in (id_token, access):
        assert token["sub"] == model.subject_for(mary.id)
        assert {key: token[key] for key in expected} == expected
    assert id_token["acr"] == "Cl" and id_token["amr"] == ["pwd"]  # the carer's own sign-in
    assert set(body["scope"].split()) == {"openid", "profile"}  # email and offline_access: Mary never allowed
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).get_json()
    assert info["sub"] == model.subject_for(mary.id) and info["given_name"] == "Mary" and "email" not in info
    assert {key: info[key] for key in expected} == expected
    described = introspect(client, bcl_rp, body["access_token"])
    assert described["active"] and described["sub"] == model.subject_for(mary.id)
    assert {key: described[key] for key in expected} == expected
    last = db_session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc())).first()
    types = [e.type for e in db_session.scalars(select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(3))]
    assert "acted_on_behalf" in types and last is not None


def test_choosing_myself_is_an_ordinary_sign_in(client: FlaskClient, db_session: Session, ledger: Ledger,
                                                mary: Account, carol: Account, rp: RegisteredClient) -> None:
    delegate(db_session, ledger, mary, carol)
    sign_in(client, carol)
    token = claims(acting_tokens(client, rp, "myself")["id_token"])
    assert token["sub"] == rp.model.subject_for(carol.id) and "act" not in token and "delegation" not in token


def test_no_question_without_a_delegation_or_for_clients_without_delegation_support(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        agency: Agency) -> None:
    sign_in(client, carol)
    no_support = make_client(db_session, agency, method="client_secret_basic", delegation_supported=False)
    acting_tokens(client, no_support, None)  # asserts the chooser is never shown
    delegate(db_session, ledger, mary, carol)
    token = claims(acting_tokens(client, no_support, None)["id_token"])
    assert "act" not in token


def test_choosing_someone_you_may_not_act_for_is_refused(client: FlaskClient, db_session: Session, ledger: Ledger,
                                                         mary: Account, carol: Account, rp: RegisteredClient) -> None:
    delegate(db_session, ledger, mary, carol)
    other = delegate(db_session, ledger, mary, person(db_session, "Olga"))  # Mary's other carer
    sign_in(client, carol)
    response = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce()))
    path = response.headers["Location"]
    assert path.startswith("/authorize/who/")
    page = client.get(path).get_data(as_text=True)
    assert "Mary Smith" in page and other.id not in page
    for forged in (other.id, "x" * 300, "' OR 1=1 --"):
        answer = client.post(path, data={"who": forged, "csrf_token": flows.CSRF.search(page).group(1)})
        assert answer.status_code == 403
    assert db_session.scalar(select(TokenFamily).where(TokenFamily.delegation_id == other.id)) is None


def test_a_view_delegate_cannot_get_service_scopes_or_refresh_tokens(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        agency: Agency) -> None:
    service = make_client(db_session, agency, method="client_secret_basic",
                          scope="openid profile offline_access benefits:apply")
    delegation = delegate(db_session, ledger, mary, carol, Terms(type="family", mode="view"))
    consent(db_session, ledger, mary, service, {"profile", "benefits:apply", "offline_access"})
    sign_in(client, carol)
    body = acting_tokens(client, service, delegation.id, scope="openid profile benefits:apply offline_access")
    assert set(body["scope"].split()) == {"openid", "profile"} and "refresh_token" not in body
    assert claims(body["access_token"])["delegation"]["mode"] == "view"


def test_scopes_beyond_the_delegation_are_not_issued(client: FlaskClient, db_session: Session, ledger: Ledger,
                                                     mary: Account, carol: Account, rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol,
                          Terms(type="carer", mode="act", scopes=frozenset({"openid", "profile"})))
    consent(db_session, ledger, mary, rp, {"profile", "email", "phone"})
    sign_in(client, carol)
    body = acting_tokens(client, rp, delegation.id, scope="openid profile email phone")
    assert set(body["scope"].split()) == {"openid", "profile"}


def test_revoking_stops_every_token_at_once_and_tells_the_agency_and_both_people(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        bcl_rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    consent(db_session, ledger, mary, bcl_rp, {"profile", "offline_access"})
    sign_in(client, carol)
    body = acting_tokens(client, bcl_rp, delegation.id, scope="openid profile offline_access")
    assert introspect(client, bcl_rp, body["access_token"])["active"]
    lifecycle.transition(db_session, delegation, "revoke", by=f"account:{mary.id}", reason="revoked_by_principal",
                         ledger=ledger, effects=ServiceEffects())
    db_session.commit()
    assert introspect(client, bcl_rp, body["access_token"]) == {"active": False}
    assert introspect(client, bcl_rp, body["refresh_token"]) == {"active": False}
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 401
    assert flows.refresh(client, bcl_rp, body["refresh_token"]).get_json()["error"] == "invalid_grant"
    queued = db_session.scalars(select(OutboxMessage)).all()
    logout = [m for m in queued if m.kind == "backchannel_logout" and m.recipient == "https://rp.example/bcl"]
    assert len(logout) == 1  # sub: the one served
    assert json.loads(open_body(db_session, logout[0]))["account_id"] == mary.id
    told = {m.recipient for m in queued if m.kind == "email" and "no longer act" in open_body(db_session, m)}
    assert told == {mary.email, carol.email}
    assert db_session.scalars(select(LedgerEntry.type).order_by(LedgerEntry.seq.desc())).first() == \
        "delegation.revoked"


def test_tokens_die_at_the_end_date_even_before_the_tick(client: FlaskClient, db_session: Session, ledger: Ledger,
                                                         mary: Account, carol: Account, rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    consent(db_session, ledger, mary, rp, {"profile", "offline_access"})
    sign_in(client, carol)
    body = acting_tokens(client, rp, delegation.id, scope="openid profile offline_access")
    delegation.ends_at = utcnow()  # the end date passes; the nightly tick has not run yet
    db_session.commit()
    assert client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).status_code == 401
    assert flows.refresh(client, rp, body["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_refresh_re_checks_the_principals_consent(client: FlaskClient, db_session: Session, ledger: Ledger,
                                                  mary: Account, carol: Account, rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    consent(db_session, ledger, mary, rp, {"profile", "email", "offline_access"})
    sign_in(client, carol)
    body = acting_tokens(client, rp, delegation.id, scope="openid profile email offline_access")
    record_decision(db_session, mary.id, rp.model.agency_id, granted={"offline_access"}, denied={"profile", "email"},
                    ledger=ledger, client_id=rp.client_id)
    db_session.commit()
    refreshed = flows.refresh(client, rp, body["refresh_token"]).get_json()
    assert set(refreshed["scope"].split()) == {"openid", "offline_access"}
    assert claims(refreshed["access_token"])["act"] == {"sub": rp.model.subject_for(carol.id)}


def test_prompt_none_never_shows_the_question_and_signs_in_as_myself(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        rp: RegisteredClient) -> None:
    delegate(db_session, ledger, mary, carol)
    sign_in(client, carol)
    acting_tokens(client, rp, "myself")  # Carol consents for herself once
    token = claims(acting_tokens(client, rp, None, prompt="none")["id_token"])
    assert token["sub"] == rp.model.subject_for(carol.id) and "act" not in token


def test_a_delegation_revoked_while_choosing_is_refused_when_resuming(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    sign_in(client, carol)
    path = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce())).headers["Location"]
    page = client.get(path).get_data(as_text=True)
    chosen = client.post(path, data={"who": delegation.id, "csrf_token": flows.CSRF.search(page).group(1)})
    lifecycle.transition(db_session, delegation, "revoke", by=f"account:{mary.id}", reason="revoked_by_principal",
                         ledger=ledger, effects=ServiceEffects())
    db_session.commit()
    resumed = client.get(chosen.headers["Location"])
    assert resumed.status_code == 403 and "cannot use this service for that person" in resumed.get_data(as_text=True)


def test_discovery_lists_the_acting_claims(client: FlaskClient) -> None:
    supported = client.get("/.well-known/openid-configuration").get_json()["claims_supported"]
    assert {"act", "delegation"} <= set(supported)


def test_every_page_says_whom_the_carer_is_acting_for_until_it_stops(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    sign_in(client, carol)
    assert "data-acting-banner" not in client.get("/account/acting-for").get_data(as_text=True)
    acting_tokens(client, rp, "myself")
    assert "data-acting-banner" not in client.get("/account/acting-for").get_data(as_text=True)
    acting_tokens(client, rp, delegation.id)
    for page in ("/account/acting-for", "/account", "/account/sessions", "/account/delegates", "/"):
        html = client.get(page).get_data(as_text=True)
        assert "data-acting-banner" in html and "for Mary Smith, as their carer" in html, page
    lifecycle.transition(db_session, delegation, "revoke", by="system", reason="revoked_by_principal",
                         ledger=ledger, effects=ServiceEffects())
    db_session.commit()
    assert "data-acting-banner" not in client.get("/account/acting-for").get_data(as_text=True)


def test_the_banner_gives_way_to_an_error_summary_and_to_a_success_message(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account,
        rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    sign_in(client, carol)
    acting_tokens(client, rp, delegation.id)
    assert "data-acting-banner" in client.get("/account/delegates/invite").get_data(as_text=True)
    invalid = client.post("/account/delegates/invite", data={"email": "x", "csrf_token": flows.csrf_token(
        client, "/account/delegates/invite")}).get_data(as_text=True)
    assert "govuk-error-summary" in invalid and "data-acting-banner" not in invalid
    assert "data-acting-banner" not in client.get("/account/acting-for?done=accept").get_data(as_text=True)
