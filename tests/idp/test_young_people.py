"""A child growing up (delegation.md ``parent``, "Review / expire"): the parent gives the child
profile to the young person through a single-use emailed link; the young person sets a password,
signs in as themselves, decides what is shared, and agrees (or not) that the parent keeps helping."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.delegation_models import Delegation
from consent.ledger import Ledger
from idp.dependents import COOLING_OFF, create_dependent
from idp.models import Account, EmailChallenge, OutboxMessage
from idp.outbox import open_body
from store.db import utcnow
from tests.conftest import CITIZEN_PASSWORD
from tests.idp import flows
from tests.idp.delegation_flows import acting_tokens, claims, consent, emailed_link
from tests.idp.flows import RegisteredClient

LINK = re.compile(r"http://localhost(/own-account/[A-Za-z0-9_.-]+)")
NEW_PASSWORD = "kit's own long passphrase 42"


def child_of(db_session: Session, ledger: Ledger, parent: Account, age: int) -> Delegation:
    today = dt.date.today()
    born = today.replace(year=today.year - age) - dt.timedelta(days=30)
    delegation = create_dependent(db_session, parent, given_name="Kit", family_name="Smith", birthdate=born,
                                  parent_age=16, ledger=ledger)
    db_session.commit()
    return delegation


def signed_in(app: Any, account: Account) -> FlaskClient:
    client: FlaskClient = app.test_client()
    flows.sign_in(client, account.email, CITIZEN_PASSWORD)
    return client


def offer(client: FlaskClient, delegation: Delegation, email: str) -> Any:
    path = f"/account/acting-for/{delegation.id}/own-account"
    return client.post(path, data={"email": email, "csrf_token": flows.csrf_token(client, path)})


def link_for(db_session: Session, email: str) -> str:
    return emailed_link(db_session, email, LINK)


def set_password(client: FlaskClient, link: str, password: str) -> Any:
    return client.post(link, data={"password": password, "csrf_token": flows.csrf_token(client, link)})


def handed_over_a_week_ago(db_session: Session, delegation: Delegation) -> None:
    """As if the handover happened ``COOLING_OFF`` and a minute ago (the agreement is then possible)."""
    db_session.execute(update(EmailChallenge).where(EmailChallenge.account_id == delegation.principal_id,
                                                    EmailChallenge.verified_at.is_not(None))
                       .values(verified_at=utcnow() - COOLING_OFF - dt.timedelta(minutes=1)))
    db_session.commit()


def offers(db_session: Session) -> int:
    query = select(func.count()).select_from(EmailChallenge).where(EmailChallenge.purpose == "handover")
    return db_session.scalar(query) or 0


def test_a_parent_gives_a_fourteen_year_old_their_own_account(app: Any, db_session: Session, ledger: Ledger,
                                                              mary: Account, rp: RegisteredClient) -> None:
    delegation = child_of(db_session, ledger, mary, 14)
    parent = signed_in(app, mary)
    assert "Give Kit their own account" in parent.get("/account/acting-for").get_data(as_text=True)
    assert offer(parent, delegation, "kit@example.com").status_code == 302

    young_person: FlaskClient = app.test_client()
    link = link_for(db_session, "kit@example.com")
    page = young_person.get(link)
    assert page.status_code == 200 and "Set up your account, Kit" in page.get_data(as_text=True)
    weak = set_password(young_person, link, "short")
    assert weak.status_code == 400
    done = set_password(young_person, link, NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"].endswith("/account/delegates?done=own_account")

    kit = db_session.get(Account, delegation.principal_id)
    db_session.refresh(kit)
    assert kit is not None and (kit.email, kit.email_verified) == ("kit@example.com", True)
    page = young_person.get("/account/delegates").get_data(as_text=True)
    assert "Mary Smith" in page and "You can agree from" in page  # Kit sees who can act for them
    told = db_session.scalars(select(OutboxMessage.subject).where(OutboxMessage.recipient == mary.email)).all()
    assert any("Kit has their own account" in subject for subject in told)
    assert young_person.get(link).status_code == 410  # the link worked once

    again: FlaskClient = app.test_client()
    flows.sign_in(again, "kit@example.com", NEW_PASSWORD)  # Kit signs in as themselves
    assert "People who can act for you" in again.get("/account/delegates").get_data(as_text=True)

    # Kit now decides what is shared: Mary acting for Kit gets only what Kit allowed.
    assert set(acting_tokens(parent, rp, delegation.id, scope="openid profile")["scope"].split()) == {"openid"}
    consent(db_session, ledger, kit, rp, {"profile"})
    body = acting_tokens(parent, rp, delegation.id, scope="openid profile")
    assert set(body["scope"].split()) == {"openid", "profile"}
    assert claims(body["id_token"])["sub"] == rp.model.subject_for(kit.id)  # the same person to the agency


def test_the_young_person_agrees_that_the_parent_keeps_helping(app: Any, db_session: Session, ledger: Ledger,
                                                               mary: Account) -> None:
    delegation = child_of(db_session, ledger, mary, 15)
    assert offer(signed_in(app, mary), delegation, "kit@example.com").status_code == 302
    kit: FlaskClient = app.test_client()
    assert set_password(kit, link_for(db_session, "kit@example.com"), NEW_PASSWORD).status_code == 302
    path = f"/account/delegates/{delegation.id}/continue"
    handed_over_a_week_ago(db_session, delegation)
    kit = app.test_client()
    flows.sign_in(kit, "kit@example.com", NEW_PASSWORD)  # a sign-in of Kit's own, after the week
    answered = kit.post(path, data={"csrf_token": flows.csrf_token(kit, "/account/delegates")})
    assert answered.status_code == 302 and answered.headers["Location"].endswith("done=continue")
    db_session.refresh(delegation)
    assert delegation.status == "active" and delegation.continued_at is not None
    assert delegation.status_changed_by == f"account:{delegation.principal_id}"
    # Agreeing at 15 does not end the parent's help sooner: a year after turning 16.
    assert delegation.ends_at is not None and delegation.ends_at > utcnow() + dt.timedelta(days=366)
    assert "handed over by its parent" in (delegation.status_note or "")  # evidence for operators
    assert delegation.continued_assurance == "handover_password"
    # The parent cannot agree on the young person's behalf.
    parent = signed_in(app, mary)
    refused = parent.post(path, data={"csrf_token": flows.csrf_token(parent, "/account/acting-for")})
    assert refused.status_code == 404


@pytest.mark.parametrize("email", ["not-an-email", "kid@dependent.invalid", "deleted-1@invalid"])
def test_bad_addresses_are_explained_and_nothing_is_sent(app: Any, db_session: Session, ledger: Ledger,
                                                         mary: Account, email: str) -> None:
    delegation = child_of(db_session, ledger, mary, 14)
    response = offer(signed_in(app, mary), delegation, email)
    assert response.status_code == 400 and 'href="#email"' in response.get_data(as_text=True)
    assert offers(db_session) == 0


@pytest.mark.parametrize("whose", ["someone else's"])  # the parent's own: tests/security/test_delegation_faults.py
def test_an_address_with_an_account_is_not_revealed_to_the_parent(app: Any, db_session: Session, ledger: Ledger,
                                                                  mary: Account, carol: Account,
                                                                  whose: str) -> None:
    delegation = child_of(db_session, ledger, mary, 14)
    address = carol.email if whose == "someone else's" else mary.email
    parent = signed_in(app, mary)
    response = offer(parent, delegation, address)
    assert response.status_code == 302  # the same answer as for an address with no account
    assert response.headers["Location"] == offer(parent, delegation, "new-kit@example.com").headers["Location"]
    assert offers(db_session) == 1  # only for the address with no account
    told = db_session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == address)).all()
    bodies = [open_body(db_session, message) for message in told]
    assert any("already has an account" in body for body in bodies)
    assert not any("/own-account/" in body for body in bodies)


def test_a_young_child_or_someone_else_cannot_be_given_an_account(app: Any, db_session: Session, ledger: Ledger,
                                                                  mary: Account, carol: Account) -> None:
    young = child_of(db_session, ledger, mary, 10)
    parent = signed_in(app, mary)
    assert "their own account" not in parent.get("/account/acting-for").get_data(as_text=True)
    assert parent.get(f"/account/acting-for/{young.id}/own-account").status_code == 403
    older = child_of(db_session, ledger, mary, 14)
    assert signed_in(app, carol).get(f"/account/acting-for/{older.id}/own-account").status_code == 404
    assert offers(db_session) == 0


def test_links_work_once_only_the_newest_and_not_in_a_signed_in_browser(app: Any, db_session: Session,
                                                                        ledger: Ledger, mary: Account) -> None:
    delegation = child_of(db_session, ledger, mary, 14)
    parent = signed_in(app, mary)
    assert offer(parent, delegation, "kit@example.com").status_code == 302
    first = link_for(db_session, "kit@example.com")
    assert offer(parent, delegation, "kit.smith@example.com").status_code == 302
    newest = link_for(db_session, "kit.smith@example.com")
    anonymous: FlaskClient = app.test_client()
    assert anonymous.get(first).status_code == 410  # replaced by the newer link
    assert parent.get(newest).status_code == 403  # the parent's own browser: sign out first
    for forged in ("/own-account/nonsense", newest[:-3] + "xyz", "/own-account/" + "a" * 400):
        assert anonymous.get(forged).status_code == 410
    assert set_password(anonymous, newest, NEW_PASSWORD).status_code == 302


def test_a_profile_paused_at_sixteen_can_still_be_handed_over_and_its_parent_brought_back(
        app: Any, db_session: Session, ledger: Ledger, mary: Account) -> None:
    delegation = child_of(db_session, ledger, mary, 15)
    kid = db_session.get(Account, delegation.principal_id)
    assert kid is not None and kid.birthdate is not None
    kid.birthdate = kid.birthdate.replace(year=kid.birthdate.year - 1)  # now 16: the worker paused it
    lifecycle.transition(db_session, delegation, "suspend", by="system", reason="dependent_came_of_age",
                         ledger=ledger, effects=None)
    db_session.commit()
    parent = signed_in(app, mary)
    assert "Give Kit their own account" in parent.get("/account/acting-for").get_data(as_text=True)
    assert offer(parent, delegation, "kit@example.com").status_code == 302
    kit: FlaskClient = app.test_client()
    assert set_password(kit, link_for(db_session, "kit@example.com"), NEW_PASSWORD).status_code == 302
    handed_over_a_week_ago(db_session, delegation)
    kit = app.test_client()
    flows.sign_in(kit, "kit@example.com", NEW_PASSWORD)
    assert "Let Mary keep helping me" in kit.get("/account/delegates").get_data(as_text=True)
    answered = kit.post(f"/account/delegates/{delegation.id}/continue",
                        data={"csrf_token": flows.csrf_token(kit, "/account/delegates")})
    assert answered.status_code == 302
    db_session.refresh(delegation)
    assert (delegation.status, delegation.status_reason) == ("active", "young_person_consented")


def test_a_profile_paused_by_staff_cannot_be_handed_over(app: Any, db_session: Session, ledger: Ledger,
                                                         mary: Account) -> None:
    delegation = child_of(db_session, ledger, mary, 14)
    lifecycle.transition(db_session, delegation, "suspend", by="operator:sam", reason="suspended_by_operator",
                         ledger=ledger, effects=None, note="safeguarding")
    db_session.commit()
    assert signed_in(app, mary).get(f"/account/acting-for/{delegation.id}/own-account").status_code == 403


def test_a_link_sent_before_staff_paused_the_parent_no_longer_works(app: Any, db_session: Session, ledger: Ledger,
                                                                     mary: Account) -> None:
    delegation = child_of(db_session, ledger, mary, 14)
    assert offer(signed_in(app, mary), delegation, "mum-alias@example.com").status_code == 302
    link = link_for(db_session, "mum-alias@example.com")
    lifecycle.transition(db_session, delegation, "suspend", by="operator:sam", reason="suspended_by_operator",
                         ledger=ledger, effects=None, note="safeguarding")
    db_session.commit()
    anonymous: FlaskClient = app.test_client()
    assert anonymous.get(link).status_code == 410
    posted = anonymous.post(link, data={"password": NEW_PASSWORD, "csrf_token": flows.csrf_token(anonymous, "/signin")})
    assert posted.status_code == 410
    kid = db_session.get(Account, delegation.principal_id)
    db_session.refresh(kid)
    assert kid is not None and kid.email.endswith("@dependent.invalid")  # still nobody's
