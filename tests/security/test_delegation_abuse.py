"""Threat: delegation abuse (delegation.md "Rules").

Mitigation: a delegate cannot escalate beyond the principal's consent or the delegation's scopes,
cannot act after revocation or expiry, and sees only what the principal shared with that agency,
never the principal's other data (email, other agencies).
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from consent import delegations as lifecycle
from consent.delegations import Terms
from consent.ledger import Ledger
from idp.delegation_effects import ServiceEffects
from idp.models import Account
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import acting_tokens, consent, delegate, person
from tests.idp.flows import RegisteredClient

ALL = "openid profile email phone offline_access"


@pytest.fixture
def principal(db_session: Session) -> Account:
    return person(db_session, "Mary")


@pytest.fixture
def carer(db_session: Session) -> Account:
    return person(db_session, "Carol")


def _userinfo(client: FlaskClient, token: str) -> tuple[int, dict]:
    response = client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.get_json()


def test_a_delegate_gets_no_scope_beyond_the_principals_consent_or_the_delegation(
        client: FlaskClient, db_session: Session, ledger: Ledger, principal: Account, carer: Account,
        rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, principal, carer,
                          Terms(type="carer", mode="act", scopes=frozenset({"openid", "profile", "email"})))
    consent(db_session, ledger, principal, rp, {"profile", "phone"})
    flows.sign_in(client, carer.email, CITIZEN_PASSWORD)
    body = acting_tokens(client, rp, delegation.id, scope=ALL)
    assert set(body["scope"].split()) == {"openid", "profile"}  # email: not consented; phone: not delegated
    assert "refresh_token" not in body
    status, info = _userinfo(client, body["access_token"])
    assert status == 200 and "email" not in info and "phone_number" not in info
    assert info["sub"] == rp.model.subject_for(principal.id) and principal.email not in str(info)


def test_a_view_only_delegate_cannot_act(client: FlaskClient, db_session: Session, ledger: Ledger,
                                         principal: Account, carer: Account, rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, principal, carer, Terms(type="family", mode="view"))
    consent(db_session, ledger, principal, rp, {"profile", "offline_access"})
    flows.sign_in(client, carer.email, CITIZEN_PASSWORD)
    body = acting_tokens(client, rp, delegation.id, scope="openid profile offline_access")
    assert "refresh_token" not in body and set(body["scope"].split()) <= {"openid", "profile"}


def test_a_delegate_cannot_act_after_revocation(client: FlaskClient, db_session: Session, ledger: Ledger,
                                                principal: Account, carer: Account, rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, principal, carer)
    consent(db_session, ledger, principal, rp, {"profile", "offline_access"})
    flows.sign_in(client, carer.email, CITIZEN_PASSWORD)
    body = acting_tokens(client, rp, delegation.id, scope="openid profile offline_access")
    lifecycle.transition(db_session, delegation, "revoke", by=f"account:{principal.id}",
                         reason="revoked_by_principal", ledger=ledger, effects=ServiceEffects())
    db_session.commit()
    assert _userinfo(client, body["access_token"])[0] == 401
    assert flows.refresh(client, rp, body["refresh_token"]).get_json()["error"] == "invalid_grant"
    response = client.get("/authorize", query_string=flows.authorize_params(rp, flows.pkce()))
    assert delegation.id not in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_delegate_cannot_act_after_expiry(client: FlaskClient, db_session: Session, ledger: Ledger,
                                            principal: Account, carer: Account, rp: RegisteredClient) -> None:
    delegation = delegate(db_session, ledger, principal, carer)
    consent(db_session, ledger, principal, rp, {"profile", "offline_access"})
    flows.sign_in(client, carer.email, CITIZEN_PASSWORD)
    body = acting_tokens(client, rp, delegation.id, scope="openid profile offline_access")
    delegation.ends_at = utcnow()  # the end date passes before the nightly tick
    db_session.commit()
    assert _userinfo(client, body["access_token"])[0] == 401
    assert flows.refresh(client, rp, body["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_delegate_cannot_see_the_principals_account_pages(client: FlaskClient, db_session: Session,
                                                            ledger: Ledger, principal: Account,
                                                            carer: Account) -> None:
    delegate(db_session, ledger, principal, carer)
    flows.sign_in(client, carer.email, CITIZEN_PASSWORD)
    for path in ("/account", "/account/record", "/account/record.json", "/account/connected-services",
                 "/account/sessions"):
        assert principal.email not in client.get(path).get_data(as_text=True), path


PASS_ON_FIELDS = ["email", "mode", "services", "agency", "details", "scope", "end-day", "end-month", "end-year",
                  "onward", "type"]
PASS_ON_VALUES = ["", "all", "some", "act", "view", "yes", "openid", "profile", "email", "phone", "address",
                  "offline_access", "1", "12", "31", "2027", "2099", "x@example.com", "\x00", "'\"<>"]


def test_no_form_can_make_an_onward_delegation_wider_than_its_own(
        app: Flask, db_session: Session, ledger: Ledger, principal: Account) -> None:
    """Hypothesis changes and adds fields of a valid pass-on form; whatever it sends, an onward
    delegation made is never wider than the carer's own (view only, name and profile, its end date)."""
    outcomes: list[int] = []

    @given(changes=st.lists(st.tuples(st.sampled_from(PASS_ON_FIELDS), st.sampled_from(PASS_ON_VALUES)),
                            max_size=6),
           replace=st.booleans())
    @examples(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def attempt(changes: list[tuple[str, str]], replace: bool) -> None:
        carer = person(db_session, "Carol")
        mine = delegate(db_session, ledger, principal, carer, Terms(
            type="carer", mode="view", scopes=frozenset({"openid", "profile"}), may_delegate_onward=True))
        client = app.test_client()
        flows.sign_in(client, carer.email, CITIZEN_PASSWORD)
        path = f"/account/acting-for/{mine.id}/pass-on"
        helper = f"helper-{len(outcomes)}@example.com"  # each its own: an address gets 5 emails an hour
        form = MultiDict({"email": helper, "mode": "view", "services": "all", "details": "all"})
        for name, value in changes:
            form.setlist(name, [value]) if replace else form.add(name, value)
        form["csrf_token"] = flows.csrf_token(client, path)
        response = client.post(path, data=form)
        assert response.status_code in (302, 400, 429), response.status_code  # 429: "x@example.com" too often
        outcomes.append(response.status_code)
        for onward in lifecycle.passed_on_by(db_session, carer.id):
            assert onward.parent_id == mine.id and onward.mode == "view" and not onward.may_delegate_onward
            assert onward.scope_set is not None and onward.scope_set <= {"openid", "profile"}
            assert onward.ends_at is not None and mine.ends_at is not None and onward.ends_at <= mine.ends_at
            assert onward.type == "carer" and onward.principal_id == principal.id

    attempt()
    assert outcomes.count(302) >= 5 and outcomes.count(400) >= 5  # both made and refused were tried
