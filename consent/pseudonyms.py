"""Ledger pseudonyms: the only way ledger entries name a person (consent-ledger.md "The ledger").

A pseudonym is 128 random bits kept on the account, made on the account's first ledger event.
Erasure sets it to NULL: the entries stay, and nothing ties them to the person any more.
The ``accounts`` table belongs to ``idp``; only these two columns are relied on here.
"""

from __future__ import annotations

import secrets

from sqlalchemy import String, bindparam, column, select, table, update
from sqlalchemy.orm import Session

from consent.errors import LedgerError
from idp.db import run

_accounts = table("accounts", column("id", String), column("ledger_pseudonym", String))


def existing_pseudonym(session: Session, account_id: str) -> str | None:
    return run(session, _PSEUDONYM, {"account_id": account_id}).scalar()  # type: ignore[no-any-return]


_PSEUDONYM = select(_accounts.c.ledger_pseudonym).where(_accounts.c.id == bindparam("account_id"))


def pseudonym_for(session: Session, account_id: str) -> str:
    """The account's pseudonym, made now if it has none (the first writer wins a race)."""
    current = existing_pseudonym(session, account_id)
    if current:
        return current
    session.execute(
        update(_accounts)
        .where(_accounts.c.id == account_id, _accounts.c.ledger_pseudonym.is_(None))
        .values(ledger_pseudonym=secrets.token_urlsafe(16))
    )
    made = existing_pseudonym(session, account_id)
    if made is None:
        raise LedgerError("no such account")
    return made


def unlink_pseudonym(session: Session, account_id: str) -> None:
    session.execute(update(_accounts).where(_accounts.c.id == account_id).values(ledger_pseudonym=None))
