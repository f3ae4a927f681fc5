"""The lifecycle jobs (delegation.md "Review / expire"): end dates, lapsed invitations and requests,
unused delegations, review reminders, and a dependent coming of age."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.delegation_jobs import TickPolicy, tick
from consent.delegation_models import Delegation
from consent.delegations import Terms
from consent.errors import DelegationInvalid, DelegationStateError
from consent.ledger import Ledger
from consent.models import LedgerEntry
from idp.models import Account
from store.db import utcnow
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


def _parent_of_nearly_sixteen(db_session: Session, ledger: Ledger) -> tuple[Account, Account, Delegation]:
    child, parent = person(db_session, "Kit"), person(db_session, "Pam")
    child.birthdate = (utcnow() - dt.timedelta(days=int(16 * 365.25) - 10)).date()  # 16 in about ten days
    delegation = lifecycle.create_active(db_session, child.id, parent.id, Terms(type="parent", mode="act"),
                                         ledger=ledger, by=f"account:{parent.id}", reason="created_for_dependent",
                                         basis="parental_responsibility")
    return child, parent, delegation


def test_a_young_person_who_agrees_keeps_their_parent_past_the_age(db_session: Session, ledger: Ledger) -> None:
    child, _parent, delegation = _parent_of_nearly_sixteen(db_session, ledger)
    effects = Recorder()
    lifecycle.continue_for_young_person(db_session, delegation, child.id, ledger=ledger,
                                        effects=effects)
    assert delegation.status == "active" and delegation.continued_at is not None
    assert delegation.ends_at is not None  # reviewed like a family member's
    assert effects.told[-1][1] == "continue"
    change = lifecycle.changes(db_session, delegation.id)[-1]
    assert (change.reason, change.actor) == ("young_person_consented", f"account:{child.id}")
    assert db_session.scalars(select(LedgerEntry.type).order_by(LedgerEntry.seq.desc())).first() == "delegation.renewed"
    report = tick(db_session, ledger=ledger, effects=effects, now=utcnow() + dt.timedelta(days=11))
    assert report.came_of_age == 0 and delegation.status == "active"


def test_a_young_person_can_bring_back_a_parent_paused_for_age_but_not_by_staff(db_session: Session,
                                                                                ledger: Ledger) -> None:
    child, parent, delegation = _parent_of_nearly_sixteen(db_session, ledger)
    tick(db_session, ledger=ledger, effects=Recorder(), now=utcnow() + dt.timedelta(days=11))
    assert delegation.status == "suspended"
    with pytest.raises(DelegationInvalid):  # only the young person themselves
        lifecycle.continue_for_young_person(db_session, delegation, parent.id, ledger=ledger,
                                            effects=None)
    lifecycle.continue_for_young_person(db_session, delegation, child.id, ledger=ledger,
                                        effects=None)
    assert delegation.status == "active"

    lifecycle.transition(db_session, delegation, "suspend", by="operator:sam", reason="suspended_by_operator",
                         ledger=ledger, effects=None, note="safeguarding")
    with pytest.raises(DelegationStateError):
        lifecycle.continue_for_young_person(db_session, delegation, child.id, ledger=ledger,
                                            effects=None)
    assert (delegation.status, delegation.status_reason) == ("suspended", "suspended_by_operator")


def test_only_a_parent_delegation_can_be_continued_this_way(db_session: Session, ledger: Ledger) -> None:
    mary = person(db_session, "Mary")
    delegation = active(db_session, mary, person(db_session), ledger)
    with pytest.raises(DelegationInvalid):
        lifecycle.continue_for_young_person(db_session, delegation, mary.id, ledger=ledger, effects=None)
