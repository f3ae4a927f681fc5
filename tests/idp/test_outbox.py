"""The outbox and its worker: emails delivered to a real SMTP server, retried with backoff,
never sent twice, readable in development."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from consent.models import LedgerCheckpoint, LedgerEntry
from idp import worker
from idp.app import build_services, create_app
from idp.cli import main
from idp.config import Settings
from idp.mail import SmtpSender, send_code
from idp.models import Account, OutboxMessage
from idp.outbox import MAX_ATTEMPTS, DeliveryError, OpenedMessage, deliver_due, open_body, pending, prune, queue_email
from idp.services import Services
from idp.worker import rotate_keys_if_due, run_jobs, tick_ledger
from keys.models import SigningKey
from store.db import utcnow
from tests.idp import flows
from tests.idp.flows import RegisteredClient


class Inbox:
    """Accepts every recipient but those in ``refused`` (RFC 5321 §4.2.1: a permanent 550)."""

    def __init__(self) -> None:
        self.messages: list = []
        self.refused: set[str] = set()

    async def handle_RCPT(  # type: ignore[no-untyped-def]  # noqa: N802
            self, server, session, envelope, address, options):
        if address in self.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, f"smtp://127.0.0.1:{port}"
    controller.stop()


def test_a_queued_email_reaches_a_real_smtp_server(db_session: Session, test_sessions: sessionmaker[Session],
                                                   smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    send_code(db_session, to="ada@example.com", code="123456", purpose="signup")
    db_session.commit()
    report = deliver_due(test_sessions, {"email": SmtpSender(url, "IdP <no-reply@example.gov>")})
    assert report.sent == 1
    [mail] = inbox.messages
    assert mail["To"] == "ada@example.com"
    assert "123456" in mail.get_payload()


def test_failed_deliveries_back_off_and_finally_give_up(db_session: Session,
                                                        test_sessions: sessionmaker[Session]) -> None:
    message = queue_email(db_session, to="x@example.com", subject="s", body="b")
    db_session.commit()

    def refuse(_message: OutboxMessage) -> None:
        raise DeliveryError("mail server said no")

    delays = []
    for _ in range(MAX_ATTEMPTS):
        deliver_due(test_sessions, {"email": refuse})
        db_session.refresh(message)
        delays.append((message.next_attempt_at - utcnow()).total_seconds())
        db_session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db_session.commit()
    db_session.refresh(message)
    assert message.failed_at is not None and message.sent_at is None
    assert message.last_error == "DeliveryError: mail server said no"
    assert delays[1] > delays[0] > 0  # exponential backoff


def test_the_same_event_is_never_queued_twice(db_session: Session) -> None:
    first = queue_email(db_session, to="x@example.com", subject="s", body="b", dedupe_key="event-1")
    second = queue_email(db_session, to="x@example.com", subject="s", body="b", dedupe_key="event-1")
    assert first is not None and second is None


def test_a_sent_message_is_not_sent_again(db_session: Session, test_sessions: sessionmaker[Session]) -> None:
    queue_email(db_session, to="x@example.com", subject="s", body="b")
    db_session.commit()
    sent: list[str] = []
    deliver_due(test_sessions, {"email": lambda m: sent.append(m.id)})
    deliver_due(test_sessions, {"email": lambda m: sent.append(m.id)})
    assert len(sent) == 1


def test_worker_once_delivers_and_outbox_list_reads_messages(tmp_path: Path, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}",
           "IDP_SMTP_URL": url}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    created = runner.invoke(main, ["user", "create", "--email", "w@example.com", "--given-name", "W",
                                   "--family-name", "X", "--password-stdin"], env=env, input="long enough password\n")
    assert created.exit_code == 0, created.output
    services = build_services(Settings.from_env(env))
    with services.sessions.begin() as session:
        send_code(session, to="w@example.com", code="654321", purpose="recovery")
    listed = runner.invoke(main, ["outbox", "list", "--to", "w@example.com"], env=env)
    assert "654321" in json.loads(listed.stdout.splitlines()[0])["body"]
    result = runner.invoke(main, ["worker", "--once"], env=env)
    assert json.loads(result.stdout.splitlines()[-1])["sent"] == 1
    assert "654321" in inbox.messages[0].get_payload()
    services.engine.dispose()


def test_development_outbox_page_shows_messages(client: FlaskClient, db_session: Session) -> None:
    send_code(db_session, to="dev@example.com", code="424242", purpose="signup")
    db_session.commit()
    page = client.get("/dev/outbox", query_string={"to": "dev@example.com"}).get_data(as_text=True)
    assert "424242" in page


def test_the_outbox_page_does_not_exist_in_production(settings: Settings, base_services: Services) -> None:
    production = dataclasses.replace(settings, env="production")
    app = create_app(production, services=dataclasses.replace(base_services, settings=production))
    assert app.test_client().get("/dev/outbox").status_code == 404


def test_the_worker_signs_a_checkpoint_for_new_ledger_entries(app: Flask, client: FlaskClient, db_session: Session,
                                                              rp: RegisteredClient, signed_in: Account) -> None:
    flows.tokens_for(client, rp)  # consent.granted and disclosure entries
    tick_ledger(app.extensions["idp"])
    newest = db_session.scalar(select(func.max(LedgerCheckpoint.tree_size)))
    entries = db_session.scalar(select(func.count()).select_from(LedgerEntry))
    assert newest == entries and entries >= 2


def test_the_worker_rotates_signing_keys_on_schedule_and_the_jwks_publishes_the_new_next(
        app: Flask, client: FlaskClient, db_session: Session) -> None:
    services = app.extensions["idp"]
    long_ago = utcnow() - dt.timedelta(days=services.settings.key_rotation_days + 1)
    rows = db_session.scalars(select(SigningKey).where(SigningKey.purpose == "token")).all()
    old = {row.alg: row.kid for row in rows if row.state == "current"}
    promoted = {row.alg: row.kid for row in rows if row.state == "next"}
    for row in rows:
        row.activated_at, row.created_at = long_ago, long_ago
    db_session.commit()
    rotate_keys_if_due(services)
    services.keyring.invalidate_cache()
    db_session.expire_all()
    states = {row.kid: row.state for row in db_session.scalars(select(SigningKey))}
    before = {"current": old, "next": promoted}
    assert all(states[kid] == "current" for kid in promoted.values()), (before, states)
    assert all(states[kid] == "retired" for kid in old.values()), (before, states)
    published = {key["kid"] for key in client.get("/jwks.json").get_json()["keys"]}
    assert set(old.values()) | set(promoted.values()) <= published  # retired keys stay published
    rotate_keys_if_due(services)  # not due again: the new current keys have only just started
    db_session.expire_all()
    assert {row.kid: row.state for row in db_session.scalars(select(SigningKey))} == states


@pytest.mark.parametrize("address", ["deleted-123@invalid", "0b1d@dependent.invalid", "X@Dependent.INVALID"])
def test_addresses_that_can_never_receive_mail_get_none(db_session: Session, address: str) -> None:
    assert queue_email(db_session, to=address, subject="s", body="b") is None
    assert db_session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.recipient == address)) == 0


def test_a_failing_worker_job_is_logged_and_never_stops_the_others(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def broken(_services: Services) -> None:
        raise RuntimeError("the key-encryption key cannot unseal a key")

    def after(_services: Services) -> None:
        ran.append("after")

    assert run_jobs(app.extensions["idp"], [broken, after]) == ["broken"]
    assert ran == ["after"] and "worker job broken failed" in caplog.text


def test_worker_once_exits_non_zero_and_names_a_job_that_failed(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """For cron and the like: a pass in which a job failed is not a success (the others still ran)."""
    env = {"IDP_INSTANCE_PATH": str(tmp_path), "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite'}"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    assert runner.invoke(main, ["worker", "--once"], env=env).exit_code == 0

    def housekeeping(_services: Services) -> None:
        raise RuntimeError("the housekeeping job broke")

    monkeypatch.setattr(worker, "housekeeping", housekeeping)
    ran: list[str] = []
    monkeypatch.setattr(worker, "tick_ledger", lambda _services: ran.append("tick_ledger"))
    result = runner.invoke(main, ["worker", "--once"], env=env)
    assert result.exit_code == 1
    assert json.loads(result.stdout.splitlines()[-1])["failed_jobs"] == ["housekeeping"]
    assert ran == ["tick_ledger"]  # a failed job does not stop the later ones


def _smtp_services(app: Flask, url: str) -> Services:
    services: Services = app.extensions["idp"]
    return dataclasses.replace(services, settings=dataclasses.replace(services.settings, smtp_url=url))


def _recorded(job: Callable[[Services], None], ran: list[str]) -> Callable[[Services], None]:
    def run(services: Services) -> None:
        ran.append(job.__name__)
        job(services)
    return run


def _inject(db_session: Session, to: str) -> OutboxMessage:
    """A message queued before addresses were validated (queueing itself does not check them)."""
    message = queue_email(db_session, to=to, subject="Your security code", body="code 111111")
    assert message is not None
    db_session.commit()
    return message


def test_a_message_with_a_header_injection_is_given_up_at_once_and_the_others_are_sent(
        db_session: Session, test_sessions: sessionmaker[Session], smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    poison = _inject(db_session, "victim@example.com\r\nBcc: attacker@evil.example")
    queue_email(db_session, to="after@example.com", subject="s", body="still delivered")
    db_session.commit()
    sender = {"email": SmtpSender(url, "IdP <no-reply@example.gov>")}
    report = deliver_due(test_sessions, sender)
    assert (report.sent, report.failed, report.retried) == (1, 1, 0)
    assert [mail["To"] for mail in inbox.messages] == ["after@example.com"]
    db_session.refresh(poison)
    assert poison.failed_at is not None and poison.attempts == 1 and poison.body == ""
    assert poison.last_error is not None and "not a valid header" in poison.last_error
    db_session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
    db_session.commit()
    assert deliver_due(test_sessions, sender) == deliver_due(test_sessions, sender)  # never leased again
    db_session.refresh(poison)
    assert poison.attempts == 1


def test_a_recipient_the_mail_server_refuses_for_good_is_given_up_at_once(
        db_session: Session, test_sessions: sessionmaker[Session], smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    inbox.refused.add("gone@example.com")
    message = _inject(db_session, "gone@example.com")
    report = deliver_due(test_sessions, {"email": SmtpSender(url, "IdP <no-reply@example.gov>")})
    assert report.failed == 1 and not inbox.messages
    db_session.refresh(message)
    assert message.failed_at is not None and "550" in (message.last_error or "")


def test_a_message_that_breaks_its_sender_is_retried_then_given_up_and_never_stops_the_others(
        db_session: Session, test_sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    poison = _inject(db_session, "bug@example.com")
    sent: list[str] = []

    def buggy(message: OpenedMessage) -> None:
        if message.recipient == "bug@example.com":
            raise KeyError("a bug in the sender")
        sent.append(message.recipient)

    for n in range(MAX_ATTEMPTS + 2):
        queue_email(db_session, to=f"other-{n}@example.com", subject="s", body="b")
        db_session.commit()
        deliver_due(test_sessions, {"email": buggy})
        db_session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
        db_session.commit()
    db_session.refresh(poison)
    assert len(sent) == MAX_ATTEMPTS + 2  # every other message went out, pass after pass
    assert poison.attempts == MAX_ATTEMPTS and poison.failed_at is not None  # never past the maximum
    assert "broke its sender" in caplog.text


def test_a_message_whose_attempts_ran_out_without_an_outcome_is_given_up(
        db_session: Session, test_sessions: sessionmaker[Session]) -> None:
    """The worker died while sending the last attempt: the lease runs out, the message is given up."""
    message = _inject(db_session, "crashed@example.com")
    db_session.execute(update(OutboxMessage).values(attempts=MAX_ATTEMPTS, next_attempt_at=utcnow()))
    db_session.commit()
    sent: list[str] = []
    assert deliver_due(test_sessions, {"email": lambda m: sent.append(m.id)}).failed == 1
    db_session.refresh(message)
    assert not sent and message.failed_at is not None and message.body == ""


def test_a_pass_with_a_poison_message_still_runs_every_job_and_sends_the_rest(
        app: Flask, db_session: Session, smtp: tuple[Inbox, str], monkeypatch: pytest.MonkeyPatch) -> None:
    inbox, url = smtp
    poison = _inject(db_session, "victim@example.com\nBcc: attacker@evil.example")
    send_code(db_session, to="next@example.com", code="222333", purpose="signup")
    db_session.commit()
    jobs = ["housekeeping", "prune_outbox", "rotate_keys_if_due", "remove_lost_passkeys", "tick_delegations",
            "tick_ledger"]
    ran: list[str] = []
    for name in jobs:
        monkeypatch.setattr(worker, name, _recorded(getattr(worker, name), ran))
    report = worker.run_once(_smtp_services(app, url))
    assert report.failed_jobs == [] and (report.delivery.sent, report.delivery.failed) == (1, 1)
    assert ran == jobs
    assert "222333" in inbox.messages[0].get_payload()
    db_session.refresh(poison)
    assert poison.failed_at is not None


def test_the_scheduled_jobs_run_even_when_delivery_itself_fails(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*_args: object, **_kwargs: object) -> None:
        raise OSError("the database went away")

    monkeypatch.setattr(worker, "deliver_due", unreachable)
    ran: list[str] = []
    monkeypatch.setattr(worker, "tick_ledger", lambda _services: ran.append("tick_ledger"))
    assert worker.run_once(app.extensions["idp"]).failed_jobs == ["deliver_outbox"]
    assert ran == ["tick_ledger"]


def test_a_body_is_sealed_when_queued_and_erased_once_sent(db_session: Session,
                                                           test_sessions: sessionmaker[Session]) -> None:
    message = queue_email(db_session, to="sealed@example.com", subject="s", body="your code is 424242")
    db_session.commit()
    assert message is not None and "424242" not in message.body and message.body.startswith("sealed:")
    assert open_body(db_session, message) == "your code is 424242"
    assert [m.body for m in pending(db_session, to="sealed@example.com")] == ["your code is 424242"]
    received: list[str] = []
    deliver_due(test_sessions, {"email": lambda m: received.append(m.body)})
    db_session.refresh(message)
    assert received == ["your code is 424242"] and message.body == "" and message.sent_at is not None


def test_a_sealed_body_moved_to_another_recipient_no_longer_opens(
        db_session: Session, test_sessions: sessionmaker[Session]) -> None:
    """The seal is bound to the row's id and recipient: rewriting the address in the database cannot
    redirect a code to someone else; the message is given up instead."""
    message = _inject(db_session, "owner@example.com")
    db_session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                       .values(recipient="attacker@evil.example"))
    db_session.commit()
    garbled = _inject(db_session, "garbled@example.com")
    db_session.execute(update(OutboxMessage).where(OutboxMessage.id == garbled.id).values(body="sealed:%%%"))
    db_session.commit()
    sent: list[str] = []
    assert deliver_due(test_sessions, {"email": lambda m: sent.append(m.body)}).failed == 2
    assert not sent


def test_sent_and_given_up_messages_are_pruned_after_the_retention_period(
        app: Flask, db_session: Session) -> None:
    long_ago = utcnow() - dt.timedelta(days=app.extensions["idp"].settings.outbox_retention_days + 1)
    rows = {name: _inject(db_session, f"{name}@example.com") for name in ("old-sent", "old-failed", "new-sent",
                                                                          "waiting")}
    rows["old-sent"].sent_at, rows["old-failed"].failed_at, rows["new-sent"].sent_at = long_ago, long_ago, utcnow()
    rows["waiting"].created_at = long_ago  # waiting messages stay, however old
    db_session.commit()
    worker.prune_outbox(app.extensions["idp"])
    left = set(db_session.scalars(select(OutboxMessage.recipient).where(OutboxMessage.recipient.in_(
        [f"{name}@example.com" for name in rows]))))
    assert left == {"new-sent@example.com", "waiting@example.com"}
    assert prune(db_session, retention=dt.timedelta(days=1)) == 0
