"""Erasure (consent-ledger.md): record ``account.erased``, then destroy the account's ledger secret.

The entries stay in the ledger and keep verifying; with the secret (and any legacy pseudonym) gone
from the account, nothing can recompute which entries are the person's. Call it in the
transaction that deletes the account.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from consent.events import EventType
from consent.ledger import Appended, Ledger
from consent.pseudonyms import in_ledger, pseudonym_for, unlink_pseudonyms


def erase_from_ledger(session: Session, account_id: str, *, ledger: Ledger) -> Appended | None:
    """None when the account never appeared in the ledger (there is nothing to unlink).

    The entry concerns no one agency, so it names the person in the service's own context: an
    ``account.erased`` per agency would join the person's pseudonyms by its time and place.
    """
    if not in_ledger(session, account_id):
        return None
    appended = ledger.append(session, EventType.ACCOUNT_ERASED, {"subject": pseudonym_for(session, account_id, None)})
    unlink_pseudonyms(session, account_id)
    return appended
