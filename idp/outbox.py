"""Queueing and delivering outbox messages (emails, back-channel logout tokens).

Messages are queued in the caller's transaction, so nothing is sent for a change that rolls
back, and nothing is lost once it commits. ``deliver_due`` leases each message before
sending (so two workers never send the same one), then records the outcome; failures are
retried with exponential backoff. A message is given up (``failed_at``, never leased again)
after ``MAX_ATTEMPTS``, or at once when it can never be sent (``UndeliverableError``); one
that breaks its sender is logged and counted like any failure, so it stops no other message.

Bodies hold one-time codes and links, so they are never kept in clear (security.md "Secrets
and data"): each is sealed with AES-256-GCM under a key derived from the KEK
(``keys.encryption.for_purpose``), bound to the row's id, kind and recipient, and erased once
the message is sent or given up; sent and given-up rows are deleted after the retention
period (``prune``). A session queues and reads messages only if its sessionmaker was built
with :func:`session_info`. (Bodies queued before sealing existed are read as they are.)
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from idp.models import OutboxMessage
from keys.encryption import KeyEncryptor, for_purpose
from keys.errors import KeyDecryptionError
from store.db import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = dt.timedelta(minutes=2)
BASE_BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600

SEALER = "idp.outbox.sealer"  # the Session.info entry holding the body encryptor
SEALED = "sealed:"  # the prefix of a sealed body: base64url(nonce || ciphertext || tag)
ERASED = ""  # the body of a message sent or given up


@dataclasses.dataclass(frozen=True)
class OpenedMessage:
    """A message with its body opened: what senders, ``idp outbox list`` and /dev/outbox read."""

    id: str
    kind: str
    recipient: str
    subject: str | None
    body: str
    created_at: dt.datetime
    sent_at: dt.datetime | None
    failed_at: dt.datetime | None


Sender = Callable[[OpenedMessage], None]  # raises DeliveryError (or any OSError) on failure


class DeliveryError(Exception):
    """The target refused or could not be reached; the message will be retried."""


class UndeliverableError(DeliveryError):
    """The message can never be sent (an address the mail server refuses for good, RFC 5321
    §4.2.1 5yz; a recipient that cannot go in a header): it is given up at once."""


@dataclasses.dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


@dataclasses.dataclass(frozen=True)
class Outcome:
    error: str | None = None  # None: sent
    permanent: bool = False


def session_info(kek: bytes) -> dict[str, Any]:
    """The ``info`` of a sessionmaker whose sessions queue and read messages."""
    return {SEALER: for_purpose(kek, "outbox-body")}


def _sealer(session: Session) -> KeyEncryptor:
    sealer = session.info.get(SEALER)
    if not isinstance(sealer, KeyEncryptor):
        raise RuntimeError("this session cannot seal outbox messages: build its sessionmaker with "
                           "info=idp.session_keys.session_info(kek)")
    return sealer


def _binding(message_id: str, kind: str, recipient: str) -> bytes:
    """The associated data: a body copied onto another row, or a recipient changed, fails to open."""
    return f"{message_id}\x00{kind}\x00{recipient}".encode()


def seal(session: Session, message_id: str, kind: str, recipient: str, body: str) -> str:
    blob = _sealer(session).encrypt(body.encode(), aad=_binding(message_id, kind, recipient))
    return SEALED + base64.urlsafe_b64encode(blob).decode()


def open_body(session: Session, message: OutboxMessage) -> str:
    """The clear body; KeyDecryptionError when this KEK cannot open it (or the row was tampered with)."""
    if not message.body.startswith(SEALED):
        return message.body  # erased, or queued before bodies were sealed
    try:
        blob = base64.urlsafe_b64decode(message.body[len(SEALED):])
    except ValueError:
        raise KeyDecryptionError("the sealed body is not base64url") from None
    aad = _binding(message.id, message.kind, message.recipient)
    return _sealer(session).decrypt(blob, aad=aad).decode()


def opened(message: OutboxMessage, body: str) -> OpenedMessage:
    return OpenedMessage(id=message.id, kind=message.kind, recipient=message.recipient, subject=message.subject,
                         body=body, created_at=message.created_at, sent_at=message.sent_at,
                         failed_at=message.failed_at)


def queue(session: Session, *, kind: str, recipient: str, body: str, subject: str | None = None,
          dedupe_key: str | None = None) -> OutboxMessage | None:
    """Queue a message; a second message with the same ``dedupe_key`` is dropped (never sent twice)."""
    message_id = str(uuid.uuid4())
    message = OutboxMessage(id=message_id, kind=kind, recipient=recipient, subject=subject, dedupe_key=dedupe_key,
                            body=seal(session, message_id, kind, recipient, body))
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
    with sessions.begin() as session:
        report.failed += _give_up_exhausted(session)
    for message_id in _due_ids(sessions, set(senders), limit):
        _deliver(sessions, senders, message_id, report)
    return report


def _deliver(sessions: sessionmaker[Session], senders: dict[str, Sender], message_id: str,
             report: DeliveryReport) -> None:
    with sessions.begin() as session:
        message = _lease(session, message_id)
        if message is None:
            report.skipped += 1
            return
        try:
            readable: OpenedMessage | None = opened(message, open_body(session, message))
        except KeyDecryptionError:
            readable = None
    if readable is None:
        outcome = Outcome("the body cannot be opened with this key-encryption key", permanent=True)
    else:
        outcome = _attempt(readable, senders[readable.kind])
    with sessions.begin() as session:
        _record(session, message_id, outcome, report)


def _due_ids(sessions: sessionmaker[Session], kinds: set[str], limit: int) -> list[str]:
    with sessions() as session:
        query = (select(OutboxMessage.id)
                 .where(_unfinished(), OutboxMessage.attempts < MAX_ATTEMPTS,
                        OutboxMessage.next_attempt_at <= utcnow(), OutboxMessage.kind.in_(kinds))
                 .order_by(OutboxMessage.next_attempt_at).limit(limit))
        return list(session.scalars(query))


def _unfinished() -> ColumnElement[bool]:
    return and_(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))


def _lease(session: Session, message_id: str) -> OutboxMessage | None:
    now = utcnow()
    leased = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, _unfinished(), OutboxMessage.attempts < MAX_ATTEMPTS,
               OutboxMessage.next_attempt_at <= now)
        .values(next_attempt_at=now + LEASE, attempts=OutboxMessage.attempts + 1)
    )
    if leased.rowcount != 1:  # type: ignore[attr-defined]
        return None
    message = session.get(OutboxMessage, message_id)
    if message is not None:
        session.refresh(message)
    return message


def _give_up_exhausted(session: Session) -> int:
    """A message whose last lease ran out with no outcome recorded (its worker died while sending)."""
    given_up = session.execute(
        update(OutboxMessage)
        .where(_unfinished(), OutboxMessage.attempts >= MAX_ATTEMPTS, OutboxMessage.next_attempt_at <= utcnow())
        .values(failed_at=utcnow(), body=ERASED,
                last_error=f"gave up after {MAX_ATTEMPTS} attempts with no outcome recorded")
    ).rowcount  # type: ignore[attr-defined]
    if given_up:
        log.warning("outbox: gave up %d messages whose attempts ran out", given_up)
    return int(given_up)


def _attempt(message: OpenedMessage, send: Sender) -> Outcome:
    """The outcome, with a short reason (never the message body: it may hold a code)."""
    try:
        send(message)
    except UndeliverableError as error:
        return Outcome(f"{type(error).__name__}: {error}"[:500], permanent=True)
    except (DeliveryError, OSError) as error:
        return Outcome(f"{type(error).__name__}: {error}"[:500])
    except Exception as error:  # a sender's bug must not stop the other messages or the worker's jobs
        log.exception("outbox message %s broke its sender", message.id)
        return Outcome(f"{type(error).__name__} in the sender"[:500])
    return Outcome()


def _record(session: Session, message_id: str, outcome: Outcome, report: DeliveryReport) -> None:
    record = session.get(OutboxMessage, message_id)
    assert record is not None
    now = utcnow()
    if outcome.error is None:
        record.sent_at, record.last_error, record.body = now, None, ERASED
        report.sent += 1
        return
    record.last_error = outcome.error
    if outcome.permanent or record.attempts >= MAX_ATTEMPTS:
        record.failed_at, record.body = now, ERASED
        report.failed += 1
        log.warning("outbox message %s given up after %d attempts", record.id, record.attempts)
    else:
        record.next_attempt_at = now + backoff(record.attempts)
        report.retried += 1


def prune(session: Session, *, retention: dt.timedelta) -> int:
    """Delete messages sent or given up longer than ``retention`` ago (their dedupe keys go too: an
    event triggered again after that long is a new one). Returns how many were deleted."""
    cutoff = utcnow() - retention
    pruned = session.execute(delete(OutboxMessage).where(
        or_(OutboxMessage.sent_at < cutoff, OutboxMessage.failed_at < cutoff)))
    return int(pruned.rowcount)  # type: ignore[attr-defined]


def pending(session: Session, *, to: str | None = None, limit: int = 50) -> list[OpenedMessage]:
    """Newest first: what the development outbox page and ``idp outbox list`` show (the body of a
    message sent or given up is erased)."""
    query = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
    if to:
        query = query.where(OutboxMessage.recipient == to.strip().lower())
    return [_readable(session, message) for message in session.scalars(query)]


def _readable(session: Session, message: OutboxMessage) -> OpenedMessage:
    try:
        body = open_body(session, message)
    except KeyDecryptionError:
        body = "(this message cannot be opened with this key-encryption key)"
    return opened(message, body)
