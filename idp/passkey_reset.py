"""Lost passkeys (sign-in.md "Account recovery"). A citizen who can still sign in with a password
(or recover it with an email code) but has lost every passkey cannot add a new one: adding needs a
passkey, so that a stolen password alone cannot swap in a new second factor. Instead they ask for
their passkeys to be removed; the removal waits ``WAIT`` (7 days), the owner is emailed when it is
asked for and when it happens, and using any of the passkeys meanwhile cancels it. A thief with
the password would have to go unnoticed for a week; the owner who lost a phone waits a week.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from idp.mail import SERVICE
from idp.models import Account, Passkey
from idp.outbox import queue_email
from store.db import utcnow

WAIT = dt.timedelta(days=7)


def request_reset(session: Session, account: Account, now: dt.datetime | None = None) -> dt.datetime:
    """Ask for every passkey to be removed after ``WAIT``; returns when. Asking again keeps the date."""
    now = now or utcnow()
    if account.passkeys_reset_at is None:
        account.passkeys_reset_at = now + WAIT
        queue_email(session, to=account.email, subject=f"Your {SERVICE} passkeys will be removed", body=(
            f"Someone signed in to your account asked for all its passkeys to be removed, because they "
            f"have been lost. They will be removed on {account.passkeys_reset_at:%-d %B %Y at %H:%M} UTC.\n\n"
            "If this was not you: sign in with one of your passkeys before then, which cancels it, and "
            "change your password.\n"))
    return account.passkeys_reset_at


def cancel_reset(session: Session, account: Account) -> bool:
    """Called when a passkey is used, or the owner cancels: True if a removal was waiting."""
    if account.passkeys_reset_at is None:
        return False
    account.passkeys_reset_at = None
    queue_email(session, to=account.email, subject=f"Your {SERVICE} passkeys will not be removed",
                body="The removal of your passkeys has been cancelled. They work as before.\n")
    return True


def apply_if_due(session: Session, account: Account, now: dt.datetime | None = None) -> bool:
    """Remove the account's passkeys if the wait is over (the owner can then add new ones)."""
    now = now or utcnow()
    if account.passkeys_reset_at is None or account.passkeys_reset_at > now:
        return False
    session.execute(delete(Passkey).where(Passkey.account_id == account.id))
    account.passkeys_reset_at = None
    queue_email(session, to=account.email, subject=f"Your {SERVICE} passkeys have been removed", body=(
        "All the passkeys of your account have been removed, as asked a week ago. Sign in with your "
        "password and add a new passkey.\n\nIf this was not you, reset your password now.\n"))
    return True


def apply_due(session: Session, now: dt.datetime | None = None, batch: int = 200) -> int:
    """The worker's job: every removal whose wait is over."""
    now = now or utcnow()
    due = session.scalars(select(Account).where(Account.passkeys_reset_at <= now).limit(batch)
                          .with_for_update(skip_locked=True)).all()
    return sum(apply_if_due(session, account, now) for account in due)
