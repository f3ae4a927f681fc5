"""Ledger pseudonyms: the only way ledger entries name a person (docs/consent-ledger.md "Pseudonyms").

Pairwise per agency (consent-ledger.md "The ledger"): the pseudonym of a citizen in a context is
HMAC-SHA256(the citizen's ledger secret, the context), cut to 128 bits. The context of an entry
is its agency; entries that concern no one agency (delegation steps, erasure) use the service's
own context. No two contexts share a pseudonym, so an auditor holding the whole ledger cannot
join one person's entries across agencies; the citizen's own record recomputes every context.

The secret is 256 random bits on the account (``accounts.ledger_secret``), made on the account's
first ledger event. Erasure sets it to NULL: the entries stay, and nothing can recompute the link.

Entries appended before revision 0010 name the citizen by one *legacy* pseudonym across all
agencies (``accounts.ledger_pseudonym``). The log is append-only, so they keep it: the record still
finds them by it, erasure unlinks it the same way, and no new entry ever names it.
The ``accounts`` and ``agencies`` tables belong to ``idp``; only these columns are relied on here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

from sqlalchemy import LargeBinary, String, bindparam, column, select, table, update
from sqlalchemy.orm import Session

from consent.errors import LedgerError
from store.db import run

SECRET_BYTES = 32
PSEUDONYM_BYTES = 16  # 128 bits: 22 base64url characters (ledger_subjects.pseudonym holds 32)
SERVICE_CONTEXT = "service"  # entries of no one agency: delegation steps, erasure
_LABEL = b"consent-ledger pseudonym\x00"  # domain separation from any other use of an HMAC

_accounts = table("accounts", column("id", String), column("ledger_secret", LargeBinary),
                  column("ledger_pseudonym", String))
_agencies = table("agencies", column("id", String))
_SECRET = select(_accounts.c.ledger_secret).where(_accounts.c.id == bindparam("account_id"))


def context_of(agency_id: str | None) -> str:
    """The context an entry's people are named in: its agency, else the service's own."""
    return SERVICE_CONTEXT if agency_id is None else f"agency:{agency_id}"


def derive(secret: bytes, context: str) -> str:
    digest = hmac.new(secret, _LABEL + context.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:PSEUDONYM_BYTES]).rstrip(b"=").decode("ascii")


def pseudonym_from(secret: bytes, agency_id: str | None) -> str:
    """The pseudonym for an account whose secret is already loaded (no query)."""
    return derive(secret, context_of(agency_id))


def pseudonym_for(session: Session, account_id: str, agency_id: str | None) -> str:
    """The account's pseudonym for entries of ``agency_id`` (None: of no one agency)."""
    return pseudonym_from(secret_for(session, account_id), agency_id)


def delegation_reference(session: Session, principal_id: str, delegation_id: str, agency_id: str) -> str:
    """How an ``acted_on_behalf`` entry names its delegation: pairwise too, since one delegation
    id at two agencies would join the principal's (and the delegate's) entries there."""
    return reference_from(secret_for(session, principal_id), delegation_id, agency_id)


def reference_from(principal_secret: bytes, delegation_id: str, agency_id: str) -> str:
    return derive(principal_secret, f"{context_of(agency_id)}|delegation:{delegation_id}")


def existing_secret(session: Session, account_id: str) -> bytes | None:
    found = run(session, _SECRET, {"account_id": account_id}).scalar()
    return None if found is None else bytes(found)


def secret_for(session: Session, account_id: str) -> bytes:
    """The account's ledger secret, made now if it has none (the first writer wins a race)."""
    current = existing_secret(session, account_id)
    if current:
        return current
    session.execute(
        update(_accounts)
        .where(_accounts.c.id == account_id, _accounts.c.ledger_secret.is_(None))
        .values(ledger_secret=secrets.token_bytes(SECRET_BYTES))
    )
    made = existing_secret(session, account_id)
    if made is None:
        raise LedgerError("no such account")
    return made


def record_pseudonyms(session: Session, account_id: str) -> list[str]:
    """Every pseudonym the account's entries may name: its legacy one, the service's and each
    agency's (agencies are never deleted, so none of their entries drops out of the record)."""
    row = session.execute(select(_accounts.c.ledger_secret, _accounts.c.ledger_pseudonym)
                          .where(_accounts.c.id == account_id)).first()
    if row is None:
        return []
    secret, legacy = row
    found = [legacy] if legacy else []
    if secret is not None:
        found += _all_contexts(bytes(secret), session.scalars(select(_agencies.c.id)))
    return found


def _all_contexts(secret: bytes, agency_ids: Iterable[str]) -> list[str]:
    return [pseudonym_from(secret, None)] + [pseudonym_from(secret, agency_id) for agency_id in agency_ids]


def in_ledger(session: Session, account_id: str) -> bool:
    """Has the account ever been named in the ledger (a secret, or a legacy pseudonym)?"""
    row = session.execute(select(_accounts.c.ledger_secret, _accounts.c.ledger_pseudonym)
                          .where(_accounts.c.id == account_id)).first()
    return row is not None and (row[0] is not None or row[1] is not None)


def unlink_pseudonyms(session: Session, account_id: str) -> None:
    """Erasure: the secret and the legacy pseudonym go, and with them every link to the entries."""
    session.execute(update(_accounts).where(_accounts.c.id == account_id)
                    .values(ledger_secret=None, ledger_pseudonym=None))
