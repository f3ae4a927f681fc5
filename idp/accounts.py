"""Creating citizen accounts: by sign-up, and by the operator's ``idp user create``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.contact_details import InvalidEmailAddress, email_address, name_problem
from idp.models import Account
from idp.password_policy import password_problem
from idp.passwords import hash_password


class AccountError(ValueError):
    """The account details are not acceptable; the message says why."""


def create_account(session: Session, *, email: str, given_name: str, family_name: str, password: str | None,
                   birthdate: dt.date | None = None) -> Account:
    """A verified account; ``password`` None means the citizen will sign in with a passkey."""
    try:
        email = email_address(email)
    except InvalidEmailAddress as error:
        raise AccountError(str(error)) from None
    if not given_name.strip() or not family_name.strip():
        raise AccountError("Enter a given name and a family name")
    if problem := name_problem(given_name) or name_problem(family_name):
        raise AccountError(problem)
    if password is not None and (problem := password_problem(password, email=email)):
        raise AccountError(problem)
    if session.scalar(select(Account.id).where(Account.email == email)) is not None:
        raise AccountError("An account with that email address already exists")
    account = Account(email=email, email_verified=True, given_name=given_name.strip(),
                      family_name=family_name.strip(), birthdate=birthdate,
                      password_hash=hash_password(password) if password is not None else None)
    session.add(account)
    session.flush()
    return account
