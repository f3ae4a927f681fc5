"""The delegation lifecycle jobs (delegation.md "Review / expire"), run by ``idp delegation tick``
and every pass of ``idp worker``: each is a bounded batch of ordinary transitions, so a job that
runs twice, or on two workers at once, records each change once."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import Date, String, column, select, table
from sqlalchemy.orm import Session

from consent.delegation_models import Delegation
from consent.delegations import DelegationEffects, transition
from consent.errors import DelegationStateError
from consent.ledger import Ledger
from store.db import utcnow

_accounts = table("accounts", column("id", String), column("birthdate", Date))


@dataclasses.dataclass(frozen=True)
class TickPolicy:
    unused_days: int = 365  # an active delegation never used for this long expires
    reminder_days: int = 30  # both people are emailed this long before the end date
    parent_age: int = 16  # a dependent's parent delegation is suspended at this age
    batch: int = 500


@dataclasses.dataclass
class TickReport:
    expired: int = 0
    lapsed: int = 0
    unused: int = 0
    reminded: int = 0
    came_of_age: int = 0


def tick(session: Session, *, ledger: Ledger, effects: DelegationEffects, policy: TickPolicy = TickPolicy(),
         now: dt.datetime | None = None) -> TickReport:
    now = now or utcnow()
    report = TickReport()
    ended = (Delegation.status.in_(["active", "suspended"]), Delegation.ends_at <= now)
    report.expired = _expire(session, ended, "ended_date_passed", ledger, effects, now, policy.batch)
    for status, reason in (("invited", "invitation_lapsed"), ("requested", "request_lapsed")):
        lapsed = (Delegation.status == status, Delegation.pending_until <= now)
        report.lapsed += _expire(session, lapsed, reason, ledger, effects, now, policy.batch)
    idle_since = now - dt.timedelta(days=policy.unused_days)
    unused = (Delegation.status == "active", Delegation.status_changed_at <= idle_since,
              (Delegation.last_used_at.is_(None)) | (Delegation.last_used_at <= idle_since))
    report.unused = _expire(session, unused, "unused", ledger, effects, now, policy.batch)
    report.reminded = _remind(session, effects, now, policy)
    report.came_of_age = _suspend_grown_up(session, ledger, effects, now, policy)
    return report


def _expire(session: Session, conditions: tuple[object, ...], reason: str, ledger: Ledger,
            effects: DelegationEffects, now: dt.datetime, batch: int) -> int:
    count = 0
    for delegation in session.scalars(select(Delegation).where(*conditions).limit(batch)).all():  # type: ignore[arg-type]
        try:
            transition(session, delegation, "expire", by="system", reason=reason, ledger=ledger, effects=effects,
                       now=now)
            count += 1
        except DelegationStateError:
            continue  # another worker (or an upstream revocation) got there first
    return count


def _remind(session: Session, effects: DelegationEffects, now: dt.datetime, policy: TickPolicy) -> int:
    """delegation.md "Review": both people are emailed before the end date, once."""
    soon = now + dt.timedelta(days=policy.reminder_days)
    query = select(Delegation).where(Delegation.status == "active", Delegation.ends_at <= soon,
                                     Delegation.ends_at > now, Delegation.reminded_at.is_(None)).limit(policy.batch)
    due = session.scalars(query).all()
    for delegation in due:
        delegation.reminded_at = now
        effects.notify(session, delegation, "remind")
    return len(due)


def _suspend_grown_up(session: Session, ledger: Ledger, effects: DelegationEffects, now: dt.datetime,
                      policy: TickPolicy) -> int:
    """delegation.md: a parent's delegation is suspended when the dependent reaches the age, unless the
    young person has agreed that it continues; both are told beforehand (the reminder window)."""
    today = now.date()
    warn_born_before = _years_before(today + dt.timedelta(days=policy.reminder_days), policy.parent_age)
    query = (select(Delegation, _accounts.c.birthdate)
             .join(_accounts, _accounts.c.id == Delegation.principal_id)
             .where(Delegation.type == "parent", Delegation.status == "active", Delegation.continued_at.is_(None),
                    _accounts.c.birthdate <= warn_born_before).limit(policy.batch))
    count = 0
    for delegation, born in session.execute(query).all():
        if born <= _years_before(today, policy.parent_age):
            transition(session, delegation, "suspend", by="system", reason="dependent_came_of_age", ledger=ledger,
                       effects=effects, now=now)
            count += 1
        elif delegation.reminded_at is None:
            delegation.reminded_at = now
            effects.notify(session, delegation, "age")
    return count


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)
