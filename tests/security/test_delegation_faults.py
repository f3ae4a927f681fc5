"""Delegation and child-profile faults (issue 12, item 11): whoever holds an invitation link but is
not the invited address learns and changes nothing; a parent acting for a child profile is asked
for consent like anyone, and no invented claim is released; the young person's agreement that a
parent keeps helping cannot come from the session the handover link started."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.delegation_models import Delegation
from idp.models import Account, OutboxMessage
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import emailed_link, person

LINK = re.compile(r"http://localhost(/delegation/invitation/[A-Za-z0-9_-]+)")
INVITE = {"type": "carer", "mode": "act", "services": "all", "details": "all"}


def invitation_link(app: object, db_session: Session, principal: Account, to: str) -> str:
    browser = app.test_client()  # type: ignore[attr-defined]
    flows.sign_in(browser, principal.email, CITIZEN_PASSWORD)
    token = flows.csrf_token(browser, "/account/delegates/invite")
    assert browser.post("/account/delegates/invite", data=INVITE | {"email": to, "csrf_token": token}).status_code == 302
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
