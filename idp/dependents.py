"""Dependents (delegation.md "Relationships": ``parent``): a child profile with no credentials of
its own, made by a parent who then acts for it. The profile is an account that cannot sign in (no
password, no passkey, an address that receives nothing); the parent's assertion of parental
responsibility is recorded as the delegation's creator and time, for an operator to verify."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from consent import delegations as lifecycle
from consent.delegation_models import Delegation
from consent.delegations import Terms
from consent.errors import DelegationInvalid
from consent.ledger import Ledger
from idp.models import Account

DEPENDENT_DOMAIN = "dependent.invalid"  # RFC 2606: never delivers, so never a way in


def is_dependent(account: Account) -> bool:
    return account.email.endswith("@" + DEPENDENT_DOMAIN)


def create_dependent(session: Session, parent: Account, *, given_name: str, family_name: str, birthdate: dt.date,
                     parent_age: int, ledger: Ledger, today: dt.date | None = None) -> Delegation:
    today = today or dt.date.today()
    if not given_name.strip() or not family_name.strip():
        raise DelegationInvalid("Enter the child's first and last name.")
    if not (_years_before(today, parent_age) < birthdate <= today):
        raise DelegationInvalid(f"A child profile is for a child under {parent_age}.")
    child = Account(email=f"{uuid.uuid4()}@{DEPENDENT_DOMAIN}", email_verified=False, given_name=given_name.strip(),
                    family_name=family_name.strip(), birthdate=birthdate, password_hash=None)
    session.add(child)
    session.flush()
    return lifecycle.create_active(session, child.id, parent.id, Terms(type="parent", mode="act"), ledger=ledger,
                                   by=lifecycle.actor(parent.id), reason="created_for_dependent",
                                   basis="parental_responsibility")


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)
