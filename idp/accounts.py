"""Creating citizen accounts (the operator's ``idp user create``; sign-up has its own issue)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.models import Account
from idp.passwords import hash_password

MIN_PASSWORD_LENGTH = 12


class AccountError(ValueError):
    """The account details are not acceptable; the message says why."""


def create_account(session: Session, *, email: str, given_name: str, family_name: str, password: str,
                   birthdate: dt.date | None = None) -> Account:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise AccountError("Enter an email address, like name@example.com")
    if not given_name.strip() or not family_name.strip():
        raise AccountError("Enter a given name and a family name")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(Account.id).where(Account.email == email)) is not None:
        raise AccountError("An account with that email address already exists")
    account = Account(email=email, email_verified=True, given_name=given_name.strip(),
                      family_name=family_name.strip(), birthdate=birthdate, password_hash=hash_password(password))
    session.add(account)
    session.flush()
    return account
