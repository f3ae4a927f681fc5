"""The lifecycle jobs (delegation.md "Review / expire"): end dates, lapsed invitations and requests,
unused delegations, review reminders, and a dependent coming of age."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.delegation_jobs import TickPolicy, tick
from consent.delegations import Terms
from consent.ledger import Ledger
from consent.models import LedgerEntry
from idp.db import utcnow
from tests.consent.test_delegations import CARER, Recorder, active, invited, person


def test_end_dates_and_lapsed_invitations_and_requests_expire(db_session: Session, ledger: Ledger) -> None:
    mary, carol = person(db_session, "Mary"), person(db_session, "Carol")
    ending = active(db_session, mary, carol, ledger)
    pending, _token = invited(db_session, mary, person(db_session), ledger)
    asked = lifecycle.request_delegation(db_session, person(db_session).id, mary.id, CARER, ledger=ledger)
    effects = Recorder()
    assert tick(db_session, ledger=ledger, effects=effects).expired == 0
    later = (ending.ends_at or utcnow()) + dt.timedelta(seconds=1)
    report = tick(db_session, ledger=ledger, effects=effects, now=later)
    assert (report.expired, report.lapsed) == (1, 2)
    assert [(d.status, d.status_reason) for d in (ending, pending, asked)] == [
        ("expired", "ended_date_passed"), ("expired", "invitation_lapsed"), ("expired", "request_lapsed")]
    assert effects.ended == [ending.id]
    assert tick(db_session, ledger=ledger, effects=effects, now=later).expired == 0  # once only
    assert "delegation.expired" in db_session.scalars(select(LedgerEntry.type)).all()


def test_unused_delegations_expire(db_session: Session, ledger: Ledger) -> None:
    delegation = active(db_session, person(db_session), person(db_session), ledger)
    policy = TickPolicy(unused_days=30)
    assert tick(db_session, ledger=ledger, effects=Recorder(), policy=policy).unused == 0
    later = utcnow() + dt.timedelta(days=31)
    assert tick(db_session, ledger=ledger, effects=Recorder(), policy=policy, now=later).unused == 1
    assert delegation.status_reason == "unused"


def test_reminders_before_the_end_date_are_sent_once(db_session: Session, ledger: Ledger) -> None:
    delegation = active(db_session, person(db_session), person(db_session), ledger)
    effects = Recorder()
    soon = (delegation.ends_at or utcnow()) - dt.timedelta(days=10)
    assert tick(db_session, ledger=ledger, effects=effects, now=soon).reminded == 1
    assert tick(db_session, ledger=ledger, effects=effects, now=soon).reminded == 0
    assert effects.told[-1] == (delegation.id, "remind", True)


def test_a_dependent_coming_of_age_suspends_the_parent_delegation(db_session: Session, ledger: Ledger) -> None:
    child, parent = person(db_session, "Kit"), person(db_session, "Pam")
    child.birthdate = (utcnow() - dt.timedelta(days=int(16 * 365.25) - 10)).date()  # 16 in about ten days
    delegation = lifecycle.create_active(db_session, child.id, parent.id, Terms(type="parent", mode="act"),
                                         ledger=ledger, by=f"account:{parent.id}", reason="created_for_dependent",
                                         basis="parental_responsibility")
    effects = Recorder()
    report = tick(db_session, ledger=ledger, effects=effects)
    assert report.came_of_age == 0 and effects.told == [(delegation.id, "age", True)]  # told beforehand
    report = tick(db_session, ledger=ledger, effects=effects, now=utcnow() + dt.timedelta(days=11))
    assert report.came_of_age == 1 and delegation.status == "suspended"
    assert delegation.status_reason == "dependent_came_of_age"
