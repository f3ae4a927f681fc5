"""Delegation and child-profile faults (issue 12, item 11): whoever holds an invitation link but is
not the invited address learns and changes nothing; a parent acting for a child profile is asked
for consent like anyone, and no invented claim is released; the young person's agreement that a
parent keeps helping cannot come from the session the handover link started."""

from __future__ import annotations

import datetime as dt
import json
import re

from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from consent.delegation_models import Delegation
from consent.ledger import Ledger
from consent.models import Consent
from idp.cli_delegation import _describe
from idp.dependents import COOLING_OFF, create_dependent
from idp.models import Account, EmailChallenge, LoginSession, OutboxMessage
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import acting_tokens, claims, emailed_link, person

LINK = re.compile(r"http://localhost(/delegation/invitation/[A-Za-z0-9_-]+)")
INVITE = {"type": "carer", "mode": "act", "services": "all", "details": "all"}


def invitation_link(app: object, db_session: Session, principal: Account, to: str) -> str:
    browser = app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(browser, principal.email, CITIZEN_PASSWORD)
    token = flows.csrf_token(browser, "/account/delegates/invite")
    invited = browser.post("/account/delegates/invite", data=INVITE | {"email": to, "csrf_token": token})
    assert invited.status_code == 302
    return emailed_link(db_session, to, LINK)


def test_someone_else_holding_an_invitation_link_sees_nothing_of_it_and_cannot_decline_it(
        app: object, db_session: Session) -> None:
    mary, carol, eve = person(db_session, "Mary"), person(db_session, "Carol"), person(db_session, "Eve")
    link = invitation_link(app, db_session, mary, carol.email)
    stranger: FlaskClient = app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(stranger, eve.email, CITIZEN_PASSWORD)
    page = stranger.get(link)
    text = page.get_data(as_text=True)
    assert page.status_code == 403 and "sent to a different email address" in text and "Sign out" in text
    assert "Mary" not in text and "Carer" not in text and "Use services" not in text
    for decision in ("decline", "accept"):
        answer = stranger.post(link, data={"decision": decision, "csrf_token": flows.csrf_token(stranger, "/account")})
        assert answer.status_code == 403 and "Mary" not in answer.get_data(as_text=True)
    assert db_session.scalar(select(Delegation.status).where(Delegation.invite_email == carol.email)) == "invited"
    told = db_session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == mary.email)).all()
    assert not [subject for subject in told if "declined" in subject or "accepted" in subject]


# -- a parent acting for a child profile ------------------------------------------------------

def test_a_parent_acting_for_a_child_is_asked_for_the_child_and_no_invented_claim_is_released(
        client: FlaskClient, db_session: Session, ledger: Ledger, rp: flows.RegisteredClient) -> None:
    mary = person(db_session, "Mary")
    today = dt.date.today()
    parent = create_dependent(db_session, mary, given_name="Kit", family_name="Smith",
                              birthdate=today.replace(year=today.year - 8), parent_age=16, ledger=ledger)
    db_session.commit()
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    challenge = flows.pkce()
    params = flows.authorize_params(rp, challenge, scope="openid profile email")
    who = client.get("/authorize", query_string=params).headers["Location"]
    chosen = client.post(who, data={"who": parent.id, "csrf_token": flows.csrf_token(client, who)})
    asked = client.get(chosen.headers["Location"]).headers["Location"]  # resume → the consent page
    assert "/consent/" in asked, "the parent is asked before anything about the child is shared"
    page = client.get(asked).get_data(as_text=True)
    assert "Share Kit&#39;s details" in page and "You are deciding for Kit" in page
    assert 'value="profile"' in page and 'value="email"' not in page  # the child has no email address
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
    response = flows.follow_to_client(client, client.post(asked, data=hidden | {"decision": "allow",
                                                                               "scope": ["profile"]}))
    code = flows.query(response.headers["Location"])["code"]
    body = flows.exchange_code(client, rp, code, challenge.verifier).get_json()
    token = claims(body["id_token"])
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).get_json()
    for released in (token, info, body):
        assert "dependent.invalid" not in json.dumps(released) and "email" not in released
    assert info["given_name"] == "Kit" and info["birthdate"]
    kept = db_session.scalar(select(Consent).where(Consent.account_id == parent.principal_id))
    assert kept is not None and kept.granted == {"profile"}  # a real consent row, for the child
    entries = [item.entry for item in ledger.record_of(db_session, parent.principal_id)]
    assert [e["scopes"] for e in entries if e["type"] == "consent.granted"] == [["profile"]]
    disclosed = [e for e in entries if e["type"] == "disclosure"]
    assert disclosed and all(e["basis"] == "consent" and "email" not in e["claims"] for e in disclosed)


def test_a_child_profile_never_releases_its_placeholder_address_even_under_a_statutory_basis(
        client: FlaskClient, db_session: Session, ledger: Ledger, rp: flows.RegisteredClient) -> None:
    """A statutory basis releases every registered scope without a consent page: still no email."""
    mary = person(db_session, "Mary")
    today = dt.date.today()
    parent = create_dependent(db_session, mary, given_name="Kit", family_name="Smith",
                              birthdate=today.replace(year=today.year - 8), parent_age=16, ledger=ledger)
    rp.model.statutory_basis = "Education Act 1996 s.508B"
    db_session.commit()
    flows.sign_in(client, mary.email, CITIZEN_PASSWORD)
    body = acting_tokens(client, rp, parent.id, scope="openid profile email")
    assert "email" in body["scope"].split()
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).get_json()
    token = claims(body["id_token"])
    for released in (token, info):
        assert "dependent.invalid" not in json.dumps(released)
        assert "email" not in released and "email_verified" not in released
    assert info["given_name"] == "Kit"


# -- a young person's agreement that their parent keeps helping -------------------------------

def test_a_parent_cannot_give_the_young_persons_agreement_from_the_handover(
        app: object, db_session: Session, ledger: Ledger, rp: flows.RegisteredClient) -> None:
    mary = person(db_session, "Mary")
    today = dt.date.today()
    parent = create_dependent(db_session, mary, given_name="Kit", family_name="Smith",
                              birthdate=today.replace(year=today.year - 15), parent_age=16, ledger=ledger)
    db_session.commit()
    mary_browser: FlaskClient = app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(mary_browser, mary.email, CITIZEN_PASSWORD)
    offer = f"/account/acting-for/{parent.id}/own-account"
    tagged = mary.email.replace("@", "+kit@")  # RFC 5233 subaddress: still Mary's mailbox
    refused = mary_browser.post(offer, data={"email": tagged, "csrf_token": flows.csrf_token(mary_browser, offer)})
    assert refused.status_code == 400 and "cannot be one of yours" in refused.get_data(as_text=True)
    assert mary_browser.post(offer, data={"email": "kit@example.com",
                                          "csrf_token": flows.csrf_token(mary_browser, offer)}).status_code == 302
    link = emailed_link(db_session, "kit@example.com", re.compile(r"http://localhost(/own-account/[A-Za-z0-9_.-]+)"))
    handover_session: FlaskClient = app.test_client()  # type: ignore[attr-defined]
    token = flows.csrf_token(handover_session, link)
    assert handover_session.post(link, data={"password": "kit's own long passphrase 42",
                                             "csrf_token": token}).status_code == 302
    told = {m.recipient: m.subject for m in db_session.scalars(select(OutboxMessage))}
    assert "own account" in told["kit@example.com"] and "own account" in told[mary.email]  # both are told

    agree = f"/account/delegates/{parent.id}/continue"

    def agree_from(browser: FlaskClient) -> int:
        return browser.post(agree, data={"csrf_token": flows.csrf_token(browser, "/account")}).status_code

    assert agree_from(handover_session) == 403  # at once, in the session the link started: no
    a_week_ago = utcnow() - COOLING_OFF - dt.timedelta(minutes=1)  # as if the handover was a week ago
    db_session.execute(update(EmailChallenge).where(EmailChallenge.account_id == parent.principal_id)
                       .values(verified_at=a_week_ago))
    db_session.execute(update(LoginSession).where(LoginSession.account_id == parent.principal_id)
                       .values(auth_time=a_week_ago))
    db_session.commit()
    assert agree_from(handover_session) == 403  # after the week, still not from that session
    db_session.refresh(parent)
    assert parent.continued_at is None
    fresh: FlaskClient = app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(fresh, "kit@example.com", "kit's own long passphrase 42")
    assert agree_from(fresh) == 302
    db_session.refresh(parent)
    assert parent.continued_assurance == "handover_password"  # how it was given, for operators and agencies
    assert _describe(parent)["continued_assurance"] == "handover_password"  # idp delegation list
    flows.sign_in(mary_browser, mary.email, CITIZEN_PASSWORD)
    body = acting_tokens(mary_browser, rp, parent.id, scope="openid")
    assert claims(body["id_token"])["delegation"]["young_person_agreement"] == "handover_password"
