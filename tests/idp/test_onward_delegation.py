"""Passing a delegation on (delegation.md "A delegation has"): only when the principal allowed it,
only narrower, at most one hop; the principal is told and sees it; either of them can stop it;
the onward delegate's tokens carry the nested ``act`` chain (RFC 8693 §4.1)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.delegation_models import Delegation
from consent.delegations import Terms
from consent.ledger import Ledger
from consent.pseudonyms import delegation_reference
from idp.delegation_effects import ServiceEffects
from idp.models import Account, Agency, OutboxMessage, TokenFamily
from idp.outbox import open_body
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import acting_tokens, claims, consent, delegate, person
from tests.idp.flows import RegisteredClient

LINK = re.compile(r"http://localhost(/delegation/invitation/[A-Za-z0-9_-]+)")
PASS_ON = {"email": "", "mode": "act", "services": "all", "details": "all"}
MAY_PASS_ON = Terms(type="carer", mode="act", scopes=frozenset({"openid", "profile", "email"}),
                    may_delegate_onward=True)


def post(client: FlaskClient, path: str, data: dict[str, Any], page: str = "/account/acting-for") -> Any:
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, page)})


def pass_on(client: FlaskClient, delegation: Delegation, **fields: Any) -> Any:
    path = f"/account/acting-for/{delegation.id}/pass-on"
    return post(client, path, PASS_ON | fields, page=path)


def onward_count(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Delegation).where(Delegation.parent_id.is_not(None))) or 0


def signed_in(app: Any, account: Account) -> FlaskClient:
    client: FlaskClient = app.test_client()
    flows.sign_in(client, account.email, CITIZEN_PASSWORD)
    return client


def test_principal_can_allow_passing_on_when_inviting(app: Any, db_session: Session, mary: Account,
                                                      carol: Account) -> None:
    principal = signed_in(app, mary)
    fields = {"email": carol.email, "type": "carer", "mode": "act", "services": "all", "details": "all",
              "onward": "yes"}
    assert post(principal, "/account/delegates/invite", fields, page="/account/delegates/invite").status_code == 302
    made = db_session.scalars(select(Delegation).where(Delegation.invite_email == carol.email)).one()
    assert made.may_delegate_onward is True
    assert "Can pass on" in principal.get("/account/delegates").get_data(as_text=True)
    forged = fields | {"email": "x@example.com", "onward": "twice"}
    refused = post(principal, "/account/delegates/invite", forged, page="/account/delegates/invite")
    assert refused.status_code == 400 and "pass this on" in refused.get_data(as_text=True)


def test_carer_passes_on_a_narrower_delegation_and_the_helper_acts_with_the_act_chain(
        app: Any, db_session: Session, ledger: Ledger, mary: Account, carol: Account, rp: RegisteredClient) -> None:
    mine = delegate(db_session, ledger, mary, carol, MAY_PASS_ON)
    dave = person(db_session, "Dave")
    carer = signed_in(app, carol)
    assert "Ask someone else to help Mary Smith" in carer.get("/account/acting-for").get_data(as_text=True)
    sent = pass_on(carer, mine, email=dave.email, details="some", scope=["profile"])
    assert sent.status_code == 302, sent.get_data(as_text=True)
    onward = db_session.scalars(select(Delegation).where(Delegation.parent_id == mine.id)).one()
    assert (onward.principal_id, onward.type, onward.scope_set, onward.ends_at) == \
        (mary.id, "carer", {"openid", "profile"}, mine.ends_at)  # ends when Carol's does, by default
    assert not onward.may_delegate_onward
    invitation = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == dave.email)).one()
    assert "Carol Smith, who helps Mary Smith" in open_body(db_session, invitation)
    told = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == mary.email)).all()
    assert any(dave.email in open_body(db_session, message) for message in told)  # the principal is told
    principal_page = signed_in(app, mary).get("/account/delegates").get_data(as_text=True)
    assert dave.email in principal_page and "Carol Smith asked them to help you" in principal_page

    helper = signed_in(app, dave)
    link = LINK.search(open_body(db_session, invitation)).group(1)  # type: ignore[union-attr]
    assert post(helper, link, {"decision": "accept"}, page=link).status_code == 302
    consent(db_session, ledger, mary, rp, {"profile", "email"})
    token = claims(acting_tokens(helper, rp, onward.id, scope="openid profile email")["id_token"])
    assert token["sub"] == rp.model.subject_for(mary.id)
    assert token["act"] == {"sub": rp.model.subject_for(dave.id), "act": {"sub": rp.model.subject_for(carol.id)}}
    assert token["delegation"]["id"] == delegation_reference(db_session, onward.principal_id, onward.id,
                                                             rp.model.agency_id)  # pairwise, like the ledger's
    assert "email" not in token  # only what Carol passed on

    # One hop: Dave cannot pass it on again.
    assert helper.get(f"/account/acting-for/{onward.id}/pass-on").status_code == 403


@pytest.mark.parametrize(("fields", "error"), [
    ({"details": "some", "scope": ["phone"]}, "Choose from the list"),  # Carol cannot share phone herself
    ({"end-day": "1", "end-month": "1", "end-year": str(dt.date.today().year + 2)}, "cannot last longer"),
    ({"email": "not-an-email"}, "correct format"),
    ({"services": "some", "agency": ["forged"]}, "Choose from the list"),
])
def test_an_onward_delegation_cannot_widen(app: Any, db_session: Session, ledger: Ledger, mary: Account,
                                           carol: Account, fields: dict[str, Any], error: str) -> None:
    mine = delegate(db_session, ledger, mary, carol, MAY_PASS_ON)
    response = pass_on(signed_in(app, carol), mine, **({"email": "dave@example.com"} | fields))
    assert response.status_code == 400 and error in response.get_data(as_text=True)
    assert onward_count(db_session) == 0


def test_a_view_delegate_can_pass_on_only_viewing(app: Any, db_session: Session, ledger: Ledger, mary: Account,
                                                  carol: Account) -> None:
    mine = delegate(db_session, ledger, mary, carol, Terms(type="family", mode="view", may_delegate_onward=True))
    response = pass_on(signed_in(app, carol), mine, email="dave@example.com", mode="act")
    assert response.status_code == 400 and "Choose what they can do" in response.get_data(as_text=True)
    assert onward_count(db_session) == 0


def test_passing_on_without_permission_or_for_someone_else_is_refused(
        app: Any, db_session: Session, ledger: Ledger, mary: Account, carol: Account) -> None:
    plain = delegate(db_session, ledger, mary, carol)
    carer = signed_in(app, carol)
    assert carer.get(f"/account/acting-for/{plain.id}/pass-on").status_code == 403
    path = f"/account/acting-for/{plain.id}/pass-on"
    assert post(carer, path, PASS_ON | {"email": "dave@example.com"}).status_code == 403
    eve = person(db_session, "Eve")
    theirs = delegate(db_session, ledger, mary, eve, MAY_PASS_ON)
    assert carer.get(f"/account/acting-for/{theirs.id}/pass-on").status_code == 404  # not Carol's
    assert carer.get("/account/acting-for/forged-id/pass-on").status_code == 404
    assert onward_count(db_session) == 0


def test_the_carer_or_the_principal_can_stop_an_onward_delegation(
        app: Any, db_session: Session, ledger: Ledger, mary: Account, carol: Account, agency: Agency) -> None:
    mine = delegate(db_session, ledger, mary, carol, MAY_PASS_ON)
    dave = person(db_session, "Dave")
    carer = signed_in(app, carol)
    assert pass_on(carer, mine, email=dave.email).status_code == 302
    onward = db_session.scalars(select(Delegation).where(Delegation.parent_id == mine.id)).one()
    eve = signed_in(app, person(db_session, "Eve"))
    forged = post(eve, f"/account/acting-for/{mine.id}/passed-on/{onward.id}/stop", {},
                  page="/account/delegates/invite")
    assert forged.status_code == 404
    stopped = post(carer, f"/account/acting-for/{mine.id}/passed-on/{onward.id}/stop", {})
    assert stopped.status_code == 302
    db_session.refresh(onward)
    assert (onward.status, onward.status_reason) == ("revoked", "revoked_by_delegate")

    assert pass_on(carer, mine, email=dave.email).status_code == 302
    second = db_session.scalars(select(Delegation).where(Delegation.parent_id == mine.id,
                                                         Delegation.status == "invited")).one()
    principal = signed_in(app, mary)
    assert post(principal, f"/account/delegates/{second.id}/revoke", {}, page="/account/delegates").status_code == 302
    db_session.refresh(second)
    assert (second.status, second.status_reason) == ("revoked", "revoked_by_principal")


def test_passing_on_is_to_one_other_person_at_a_time(app: Any, db_session: Session, ledger: Ledger, mary: Account,
                                                     carol: Account) -> None:
    mine = delegate(db_session, ledger, mary, carol, MAY_PASS_ON)
    carer = signed_in(app, carol)
    assert pass_on(carer, mine, email="dave@example.com").status_code == 302
    assert "Ask someone else to help Mary Smith" not in carer.get("/account/acting-for").get_data(as_text=True)
    second = pass_on(carer, mine, email="erin@example.com")
    assert second.status_code == 400 and "already asked someone else" in second.get_data(as_text=True)
    assert 'href="#email"' in second.get_data(as_text=True)
    assert onward_count(db_session) == 1


def test_pausing_the_carers_delegation_pauses_the_helpers_access_and_banner(
        app: Any, db_session: Session, ledger: Ledger, mary: Account, carol: Account, rp: RegisteredClient) -> None:
    mine = delegate(db_session, ledger, mary, carol, MAY_PASS_ON)
    dave = person(db_session, "Dave")
    assert pass_on(signed_in(app, carol), mine, email=dave.email).status_code == 302
    onward = db_session.scalars(select(Delegation).where(Delegation.parent_id == mine.id)).one()
    helper = signed_in(app, dave)
    link = LINK.search(open_body(db_session, db_session.scalars(select(OutboxMessage).where(  # type: ignore[union-attr]
        OutboxMessage.recipient == dave.email)).one())).group(1)
    assert post(helper, link, {"decision": "accept"}, page=link).status_code == 302
    body = acting_tokens(helper, rp, onward.id)
    assert "data-acting-banner" in helper.get("/account/acting-for").get_data(as_text=True)
    lifecycle.transition(db_session, mine, "suspend", by="operator:sam", reason="suspended_by_operator",
                         ledger=ledger, effects=ServiceEffects(), note="safeguarding")
    db_session.commit()
    assert "data-acting-banner" not in helper.get("/account/acting-for").get_data(as_text=True)
    userinfo = helper.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert userinfo.status_code == 401
    families = db_session.scalars(select(TokenFamily).where(TokenFamily.delegation_id == onward.id)).all()
    for family in families:
        db_session.refresh(family)
    assert families and all(family.revoked_at is not None for family in families)  # and its services told
    db_session.refresh(onward)
    assert onward.status == "active"  # paused with Carol's, not ended: it works again when hers resumes
