"""Queueing and delivering outbox messages (emails, back-channel logout tokens).

Messages are queued in the caller's transaction, so nothing is sent for a change that rolls
back, and nothing is lost once it commits. ``deliver_due`` leases each message before
sending (so two workers never send the same one), then records the outcome; failures are
retried with exponential backoff and given up after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.db import utcnow
from idp.models import OutboxMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = dt.timedelta(minutes=2)
BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600

Sender = Callable[[OutboxMessage], None]  # raises DeliveryError (or any OSError) on failure


class DeliveryError(Exception):
    """The target refused or could not be reached; the message will be retried."""


@dataclasses.dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


def queue(session: Session, *, kind: str, recipient: str, body: str, subject: str | None = None,
          dedupe_key: str | None = None) -> OutboxMessage | None:
    """Queue a message; a second message with the same ``dedupe_key`` is dropped (never sent twice)."""
    message = OutboxMessage(kind=kind, recipient=recipient, subject=subject, body=body, dedupe_key=dedupe_key)
    if dedupe_key is None:
        session.add(message)
        session.flush()
        return message
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return None
    return message


def queue_email(session: Session, *, to: str, subject: str, body: str,
                dedupe_key: str | None = None) -> OutboxMessage | None:
    """Queue an email; None for an address that can never receive one (see ``undeliverable``)."""
    if undeliverable(to):
        return None
    return queue(session, kind="email", recipient=to, subject=subject, body=body, dedupe_key=dedupe_key)


def undeliverable(address: str) -> bool:
    """RFC 2606 ``.invalid``: a child profile's address (``…@dependent.invalid``) and a deleted
    account's (``deleted-…@invalid``) never receive mail, so nothing is queued for them."""
    domain = address.rpartition("@")[2].lower()
    return domain == "invalid" or domain.endswith(".invalid")


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def deliver_due(sessions: sessionmaker[Session], senders: dict[str, Sender], *, limit: int = 100) -> DeliveryReport:
    report = DeliveryReport()
    for message_id in _due_ids(sessions, set(senders), limit):
        with sessions.begin() as session:
            message = _lease(session, message_id)
            if message is None:
                report.skipped += 1
                continue
        outcome = _attempt(message, senders[message.kind])
        with sessions.begin() as session:
            _record(session, message, outcome, report)
    return report


def _due_ids(sessions: sessionmaker[Session], kinds: set[str], limit: int) -> list[str]:
    with sessions() as session:
        query = (select(OutboxMessage.id)
                 .where(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None),
                        OutboxMessage.next_attempt_at <= utcnow(), OutboxMessage.kind.in_(kinds))
                 .order_by(OutboxMessage.next_attempt_at).limit(limit))
        return list(session.scalars(query))


def _lease(session: Session, message_id: str) -> OutboxMessage | None:
    now = utcnow()
    leased = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None),
               OutboxMessage.failed_at.is_(None), OutboxMessage.next_attempt_at <= now)
        .values(next_attempt_at=now + LEASE, attempts=OutboxMessage.attempts + 1)
    )
    if leased.rowcount != 1:  # type: ignore[attr-defined]
        return None
    message = session.get(OutboxMessage, message_id)
    if message is not None:
        session.refresh(message)
    return message


def _attempt(message: OutboxMessage, send: Sender) -> str | None:
    """None on success, else a short reason (never the message body: it may hold a code)."""
    try:
        send(message)
    except (DeliveryError, OSError) as error:
        return f"{type(error).__name__}: {error}"[:500]
    return None


def _record(session: Session, message: OutboxMessage, error: str | None, report: DeliveryReport) -> None:
    record = session.get(OutboxMessage, message.id)
    assert record is not None
    now = utcnow()
    if error is None:
        record.sent_at, record.last_error = now, None
        report.sent += 1
        return
    record.last_error = error
    if record.attempts >= MAX_ATTEMPTS:
        record.failed_at = now
        report.failed += 1
        log.warning("outbox message %s gave up after %d attempts", record.id, record.attempts)
    else:
        record.next_attempt_at = now + backoff(record.attempts)
        report.retried += 1


def pending(session: Session, *, to: str | None = None, limit: int = 50) -> list[OutboxMessage]:
    """Newest first: what the development outbox page and ``idp outbox list`` show."""
    query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
    if to:
        query = query.where(OutboxMessage.recipient == to.strip().lower())
    return list(session.scalars(query))
