"""``idp worker``: delivers the outbox (emails, back-channel logout) and does housekeeping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable

from sqlalchemy import delete

from idp.backchannel import BackchannelSender
from idp.forms import prune as prune_form_submissions
from idp.mail import SmtpSender
from idp.models import ClientAssertionJti, WebAuthnChallenge
from idp.outbox import DeliveryReport, Sender, deliver_due, prune
from idp.services import Services
from store.db import utcnow

log = logging.getLogger(__name__)


def senders(services: Services) -> dict[str, Sender]:
    settings = services.settings
    result: dict[str, Sender] = {
        "backchannel_logout": BackchannelSender(services.sessions, services.keyring, settings),
    }
    if settings.smtp_url:
        result["email"] = SmtpSender(settings.smtp_url, settings.mail_from)
    return result


@dataclasses.dataclass(frozen=True)
class PassReport:
    delivery: DeliveryReport
    failed_jobs: list[str]  # names of the jobs that raised (logged); the next pass tries them again


def run_once(services: Services, *, ledger_due: bool = True) -> PassReport:
    """Delivery is one job among the others: whatever a message or the outbox does, the scheduled
    jobs of the pass still run (and a failing job does not stop delivery)."""
    reports: list[DeliveryReport] = []

    def deliver_outbox(services: Services) -> None:
        reports.append(deliver(services))

    failed = run_jobs(services, [deliver_outbox, housekeeping, prune_outbox, rotate_keys_if_due,
                                 remove_lost_passkeys, tick_delegations, *([tick_ledger] if ledger_due else [])])
    return PassReport(delivery=reports[0] if reports else DeliveryReport(), failed_jobs=failed)


def deliver(services: Services) -> DeliveryReport:
    active = senders(services)
    if "email" not in active:
        log.info("IDP_SMTP_URL is not set: emails stay in the outbox (idp outbox list)")
    return deliver_due(services.sessions, active)


def prune_outbox(services: Services) -> None:
    """security.md "Secrets and data": sent and given-up messages are kept only this long."""
    with services.sessions.begin() as session:
        pruned = prune(session, retention=dt.timedelta(days=services.settings.outbox_retention_days))
    if pruned:
        log.info("outbox: deleted %d messages older than %d days", pruned, services.settings.outbox_retention_days)


def run_jobs(services: Services, jobs: list[Callable[[Services], None]]) -> list[str]:
    """Each job in its own transaction: one that fails (a key that cannot be unsealed, a database
    error) is logged and tried again next pass, and never stops the others. Returns the failed."""
    failed = []
    for job in jobs:
        try:
            job(services)
        except Exception:
            log.exception("worker job %s failed; the next pass tries again", job.__name__)
            failed.append(job.__name__)
    return failed


def tick_ledger(services: Services) -> None:
    """consent-ledger.md: lapsed consents become ``consent.expired``, and a checkpoint is signed
    for whatever was appended since the last one (the same as ``idp ledger checkpoint``)."""
    from consent.consents import expire_consents
    from idp.consent_ledger import ledger_for

    with services.sessions.begin() as session:
        ledger = ledger_for(services.settings, services.keyring)
        expired = expire_consents(session, ledger=ledger)
        ledger.checkpoint(session)
    if expired:
        log.info("consents expired: %d", expired)


def housekeeping(services: Services) -> None:
    now = utcnow()
    with services.sessions.begin() as session:
        session.execute(delete(ClientAssertionJti).where(ClientAssertionJti.expires_at < now))
        session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at < now))
        prune_form_submissions(session, now)


def rotate_keys_if_due(services: Services) -> None:
    """operations.md "Keys": the automatic schedule (``idp keys rotate`` does it by hand)."""
    settings = services.settings
    if settings.key_rotation_days == 0:
        return
    with services.sessions.begin() as session:
        rotated = services.keyring.rotate_if_due(session, every=dt.timedelta(days=settings.key_rotation_days),
                                                 retire_after=settings.key_retire_after)
    if rotated:
        log.info("signing keys rotated (every %d days)", settings.key_rotation_days)


def remove_lost_passkeys(services: Services) -> None:
    """idp/passkey_reset.py: passkeys reported lost a week ago are removed (and the owner told)."""
    from idp.passkey_reset import apply_due

    with services.sessions.begin() as session:
        removed = apply_due(session)
    if removed:
        log.info("lost passkeys removed for %d accounts", removed)


def tick_delegations(services: Services) -> None:
    """delegation.md "Review / expire": the lifecycle jobs (also ``idp delegation tick``)."""
    from consent.delegation_jobs import TickPolicy, tick
    from idp.consent_ledger import ledger_for
    from idp.delegation_effects import ServiceEffects

    settings = services.settings
    policy = TickPolicy(unused_days=settings.delegation_unused_days, reminder_days=settings.delegation_reminder_days,
                        parent_age=settings.delegation_parent_age)
    with services.sessions.begin() as session:
        report = tick(session, ledger=ledger_for(settings, services.keyring), effects=ServiceEffects(), policy=policy)
    if any(dataclasses.astuple(report)):
        log.info("delegations: %s", dataclasses.asdict(report))


def run_forever(services: Services, interval: float) -> None:
    last_ledger_tick = -float("inf")
    while True:
        ledger_due = time.monotonic() - last_ledger_tick >= services.settings.ledger_checkpoint_seconds
        if ledger_due:
            last_ledger_tick = time.monotonic()
        try:
            delivery = run_once(services, ledger_due=ledger_due).delivery
        except Exception:  # e.g. the database is away: the worker waits and tries again
            log.exception("worker pass failed; retrying in %.0f s", interval)
        else:
            if delivery.sent or delivery.retried or delivery.failed:
                log.info("outbox: sent %d, retried %d, gave up %d", delivery.sent, delivery.retried, delivery.failed)
        time.sleep(interval)
