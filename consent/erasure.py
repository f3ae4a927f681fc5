"""Erasure (consent-ledger.md): record ``account.erased``, then unlink the account's pseudonym.

The entries stay in the ledger and keep verifying; with the pseudonym gone from the account,
nothing ties them to the person any more. Call it in the transaction that deletes the account.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from consent.events import EventType
from consent.ledger import Appended, Ledger
from consent.pseudonyms import existing_pseudonym, unlink_pseudonym


def erase_from_ledger(session: Session, account_id: str, *, ledger: Ledger) -> Appended | None:
    """None when the account never appeared in the ledger (there is nothing to unlink)."""
    pseudonym = existing_pseudonym(session, account_id)
    if pseudonym is None:
        return None
    appended = ledger.append(session, EventType.ACCOUNT_ERASED, {"subject": pseudonym})
    unlink_pseudonym(session, account_id)
    return appended
