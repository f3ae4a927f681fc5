"""The citizen's delegation pages (delegation.md "Lifecycle"): invite by email → the single-use link
→ accept; the two list pages; revoke; Stop everyone; requests; and bad input as clear 4xx pages."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent.delegation_models import Delegation
from consent.delegations import Terms
from consent.ledger import Ledger
from idp.models import Account, Agency, OutboxMessage
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import delegate, emailed_link, person

LINK = re.compile(r"http://localhost(/delegation/invitation/[A-Za-z0-9_-]+)")
INVITE = {"email": "", "type": "carer", "mode": "act", "services": "all", "details": "all"}


def post(client: FlaskClient, path: str, data: dict[str, object], page: str = "/account/delegates/invite") -> object:
    return client.post(path, data=data | {"csrf_token": flows.csrf_token(client, page)})


def invite(client: FlaskClient, db_session: Session, email: str, **fields: object) -> str:
    response = post(client, "/account/delegates/invite", INVITE | {"email": email} | fields)
    assert response.status_code == 302, response.get_data(as_text=True)  # type: ignore[attr-defined]
    return emailed_link(db_session, email, LINK)


def count(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Delegation)) or 0


def test_invite_then_accept_from_the_emailed_link(app: object, db_session: Session, mary: Account,
                                                  carol: Account) -> None:
    principal, helper = app.test_client(), app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(principal, mary.email, CITIZEN_PASSWORD)
    link = invite(principal, db_session, carol.email, mode="view")
    assert "Invited" in principal.get("/account/delegates").get_data(as_text=True)
    page = helper.get(link)  # not signed in yet: sign in or create an account first
    assert page.status_code == 200 and "Sign in to answer" in page.get_data(as_text=True)
    flows.sign_in(helper, carol.email, CITIZEN_PASSWORD)
    assert helper.get("/").headers["Location"].endswith(link)  # back to the invitation after signing in
    assert "Mary Smith asked you to help them" in helper.get(link).get_data(as_text=True)
    answered = post(helper, link, {"decision": "accept"}, page=link)
    assert answered.status_code == 302  # type: ignore[attr-defined]
    assert "Mary Smith" in helper.get("/account/acting-for").get_data(as_text=True)
    assert post(helper, link, {"decision": "accept"}, ).status_code == 410  # type: ignore[attr-defined]
    assert helper.get(link).status_code == 410
    told = db_session.scalars(select(OutboxMessage.recipient).where(OutboxMessage.subject.contains("accepted"))).all()
    assert mary.email in told


def test_someone_else_cannot_accept_a_forwarded_link(app: object, db_session: Session, mary: Account,
                                                     carol: Account) -> None:
    principal, stranger = app.test_client(), app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(principal, mary.email, CITIZEN_PASSWORD)
    link = invite(principal, db_session, carol.email)
    eve = person(db_session, "Eve")
    flows.sign_in(stranger, eve.email, CITIZEN_PASSWORD)
    assert post(stranger, link, {"decision": "accept"}, page="/account").status_code == 403  # type: ignore[attr-defined]
    assert db_session.scalar(select(Delegation.status).where(Delegation.invite_email == carol.email)) == "invited"


@pytest.mark.parametrize(("fields", "error"), [
    ({"email": "not-an-email"}, "email address in the correct format"),
    ({"type": "landlord"}, "Choose the relationship"),
    ({"mode": "everything"}, "Choose what they can do"),
    ({"end-day": "31", "end-month": "2", "end-year": "2030"}, "real date"),
    ({"end-day": "1", "end-month": "1", "end-year": "2001"}, "in the future"),
    ({"end-day": "x", "end-month": "'", "end-year": "9999999"}, "real date"),
    ({"details": "some", "scope": ["profile", "admin:everything"]}, "Choose from the list"),
    ({"services": "some", "agency": ["forged-agency-id"]}, "Choose from the list"),
    ({"services": "some"}, "Choose at least one"),
])
def test_bad_invitations_are_explained_and_nothing_is_saved(client: FlaskClient, db_session: Session,
                                                            mary: Account, fields: dict[str, object],
                                                            error: str) -> None:
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    before = count(db_session)
    response = post(client, "/account/delegates/invite", INVITE | {"email": "carer@example.com"} | fields)
    assert response.status_code == 400 and error in response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert count(db_session) == before


def test_inviting_yourself_is_refused(client: FlaskClient, db_session: Session, mary: Account) -> None:
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    response = post(client, "/account/delegates/invite", INVITE | {"email": mary.email})
    assert response.status_code == 400  # type: ignore[attr-defined]


def test_invitation_limited_to_services_and_details(client: FlaskClient, db_session: Session, mary: Account,
                                                    carol: Account, agency: Agency, rp: flows.RegisteredClient) -> None:
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    invite(client, db_session, carol.email, services="some", agency=[agency.id], details="some", scope=["profile"])
    made = db_session.scalars(select(Delegation).where(Delegation.invite_email == carol.email)).one()
    assert made.agencies == [agency.id] and made.scope_set == {"openid", "profile"}


def test_bad_links_are_clear_errors(client: FlaskClient) -> None:
    for link in ("/delegation/invitation/nonsense", "/delegation/invitation/" + "a" * 500):
        response = client.get(link)
        assert response.status_code == 410 and "not valid" in response.get_data(as_text=True)


def test_revoke_and_the_delegate_no_longer_sees_it_as_active(app: object, db_session: Session, ledger: Ledger,
                                                             mary: Account, carol: Account) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    principal = app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(principal, mary.email, CITIZEN_PASSWORD)
    assert "Carol Smith" in principal.get("/account/delegates").get_data(as_text=True)
    response = post(principal, f"/account/delegates/{delegation.id}/revoke", {})
    assert response.status_code == 302  # type: ignore[attr-defined]
    db_session.refresh(delegation)
    assert (delegation.status, delegation.status_reason) == ("revoked", "revoked_by_principal")


def test_a_delegate_cannot_touch_or_see_the_principals_other_delegations(
        client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account, carol: Account) -> None:
    delegate(db_session, ledger, mary, carol)
    other = delegate(db_session, ledger, mary, person(db_session, "Olga"))
    flows.sign_in(client, carol.email, CITIZEN_PASSWORD)
    assert "Olga" not in client.get("/account/acting-for").get_data(as_text=True)
    assert "Olga" not in client.get("/account/delegates").get_data(as_text=True)
    for path in (f"/account/delegates/{other.id}/revoke", f"/account/acting-for/{other.id}/stop",
                 "/account/delegates/forged-id/revoke", f"/account/delegates/{other.id}/approve"):
        assert post(client, path, {}).status_code == 404  # type: ignore[attr-defined]
    db_session.refresh(other)
    assert other.status == "active"


def test_stop_everyone(client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account,
                       carol: Account) -> None:
    first = delegate(db_session, ledger, mary, carol)
    second = delegate(db_session, ledger, mary, person(db_session, "Olga"), Terms(type="family", mode="view"))
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    assert post(client, "/account/delegates/stop-everyone", {}).status_code == 400  # type: ignore[attr-defined]
    response = post(client, "/account/delegates/stop-everyone", {"confirm": "yes"})
    assert response.status_code == 302  # type: ignore[attr-defined]
    for delegation in (first, second):
        db_session.refresh(delegation)
        assert (delegation.status, delegation.status_reason) == ("revoked", "stop_everyone")


def test_request_approve(app: object, db_session: Session, mary: Account, carol: Account) -> None:
    helper, principal = app.test_client(), app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(helper, carol.email, CITIZEN_PASSWORD)
    fields = {"email": mary.email, "type": "carer", "mode": "act"}
    assert post(helper, "/account/acting-for/request", fields).status_code == 302  # type: ignore[attr-defined]
    unknown = post(helper, "/account/acting-for/request", fields | {"email": "nobody@example.com"})
    assert unknown.status_code == 302  # type: ignore[attr-defined]  # the same answer: no enumeration
    asked = db_session.scalars(select(Delegation).where(Delegation.delegate_id == carol.id)).one()
    assert asked.status == "requested"
    flows.sign_in(principal, mary.email, CITIZEN_PASSWORD)
    assert "Approve Carol Smith" in principal.get("/account/delegates").get_data(as_text=True)
    assert post(principal, f"/account/delegates/{asked.id}/approve", {}).status_code == 302  # type: ignore[attr-defined]
    db_session.refresh(asked)
    assert asked.status == "active"


def test_renew_sets_a_new_end_date(client: FlaskClient, db_session: Session, ledger: Ledger, mary: Account,
                                   carol: Account) -> None:
    delegation = delegate(db_session, ledger, mary, carol)
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    response = post(client, f"/account/delegates/{delegation.id}/renew",
                    {"end-day": "1", "end-month": "6", "end-year": str(delegation.starts_at.year + 2)})
    assert response.status_code == 302  # type: ignore[attr-defined]
    db_session.refresh(delegation)
    assert delegation.ends_at is not None and delegation.ends_at.month == 6
    bad = post(client, f"/account/delegates/{delegation.id}/renew", {"end-day": "99", "end-month": "1",
                                                                    "end-year": "2030"})
    assert bad.status_code == 400  # type: ignore[attr-defined]


def test_activity_lists_acting_with_receipts(client: FlaskClient, db_session: Session, ledger: Ledger,
                                             mary: Account, carol: Account, rp: flows.RegisteredClient) -> None:
    from tests.idp.delegation_flows import acting_tokens

    delegation = delegate(db_session, ledger, mary, carol)
    flows.sign_in(client, carol.email, CITIZEN_PASSWORD)
    acting_tokens(client, rp, delegation.id)
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    page = client.get("/account/delegates/activity").get_data(as_text=True)
    assert 'data-activity="acted_on_behalf"' in page and "Carol Smith" in page and "Test Agency" in page
    receipt = re.search(r'href="(/account/record/\d+/receipt)"', page)
    assert receipt and client.get(receipt.group(1)).status_code == 200


def test_a_parent_adds_a_child_and_uses_a_service_for_them(client: FlaskClient, db_session: Session,
                                                           mary: Account, rp: flows.RegisteredClient) -> None:
    from tests.idp.delegation_flows import acting_tokens, claims

    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    year = str(utc_year() - 8)
    bad = post(client, "/account/acting-for/child", {"given_name": "Kit", "family_name": "Smith", "day": "1",
                                                     "month": "2", "year": str(utc_year() - 30), "confirm": "yes"})
    assert bad.status_code == 400 and "under 16" in bad.get_data(as_text=True)  # type: ignore[attr-defined]
    unconfirmed = post(client, "/account/acting-for/child", {"given_name": "Kit", "family_name": "Smith",
                                                             "day": "1", "month": "2", "year": year})
    assert unconfirmed.status_code == 400  # type: ignore[attr-defined]
    assert count(db_session) == 0
    made = post(client, "/account/acting-for/child", {"given_name": "Kit", "family_name": "Smith", "day": "1",
                                                      "month": "2", "year": year, "confirm": "yes"})
    assert made.status_code == 302  # type: ignore[attr-defined]
    parent = db_session.scalars(select(Delegation).where(Delegation.delegate_id == mary.id)).one()
    assert (parent.type, parent.basis, parent.status) == ("parent", "parental_responsibility", "active")
    child = db_session.get(Account, parent.principal_id)
    assert child is not None and child.password_hash is None and flows.sign_in_fails(client, child.email, "")
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    body = acting_tokens(client, rp, parent.id, scope="openid profile")
    token = claims(body["id_token"])
    assert token["sub"] == rp.model.subject_for(child.id) and token["delegation"]["type"] == "parent"
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).get_json()
    assert info["given_name"] == "Kit" and info["act"] == {"sub": rp.model.subject_for(mary.id)}


def utc_year() -> int:
    import datetime as dt

    return dt.datetime.now(dt.UTC).year
